"""Which compute path the quantized layers took: the "Kernel path" column.

The quantized Linear modules run through ``kernels.dispatch.quantized_linear``, which picks
the fastest path that can run a weight for an input of M rows (Triton decode/GEMM on CUDA,
torch's int4/int8 ops on CPU, dequantize + matmul otherwise) and counts each call's
(M, path) in the weight's ``PreparedWeight.calls``. ``record_paths`` reads those counters
over an untimed warm-up pass. Models loaded by transformers report the class of their
quantized Linear (e.g. gptqmodel's TorchQuantLinear).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

from torch import nn


class PathLog:
    """(M, path) -> calls of our quantized Linears inside a ``record_paths`` block."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[int, str]] = Counter()


def our_quantized_modules(model: nn.Module) -> list[nn.Module]:
    from ..modules.quant_linear import QuantLinear

    return [m for m in model.modules() if isinstance(m, QuantLinear)]


@contextlib.contextmanager
def record_paths(model: nn.Module) -> Iterator[PathLog]:
    """Count the paths our quantized Linears take inside the block (their dispatcher counters)."""
    log = PathLog()
    modules = our_quantized_modules(model)
    before = [Counter(m.prepared().calls) for m in modules]
    try:
        yield log
    finally:
        for module, earlier in zip(modules, before):
            log.calls.update(module.prepared().calls - earlier)


def quantized_modules(model: nn.Module) -> list[nn.Module]:
    """Modules holding packed weights (ours: GPTQLinear/AWQLinear; gptqmodel's QuantLinear)."""
    return [m for m in model.modules() if "qweight" in dict(m.named_buffers(recurse=False))
            or "qweight" in dict(m.named_parameters(recurse=False))]


def describe_paths(model: nn.Module, log: PathLog | None) -> str:
    """One short string for the table, e.g. "cpu_int4" or "decode triton_decode / prefill triton_gemm"."""
    modules = quantized_modules(model)
    if not modules:
        return "bf16 (torch)"
    ours = [m for m in modules if type(m).__module__.startswith("qwen2vl_quant")]
    if not ours:  # loaded by transformers: name the library's Linear class
        return ", ".join(sorted({f"{type(m).__module__.split('.')[0]} {type(m).__name__}" for m in modules}))
    calls = set(log.calls) if log is not None else set()
    if not calls:
        return "no quantized call recorded"
    decode = sorted({p for (m, p) in calls if m == 1})
    prefill = sorted({p for (m, p) in calls if m != 1})
    if not prefill or decode == prefill:
        return ", ".join(decode or prefill)
    if not decode:
        return ", ".join(prefill)
    return f"decode {', '.join(decode)} / prefill {', '.join(prefill)}"
