"""Which compute path the quantized layers took: the "Kernel path" column.

The quantized Linear modules run through ``kernels.dispatch.quantized_linear``, which picks
the fastest path that can run a weight for an input of M rows (Triton decode/GEMM on CUDA,
torch's int4/int8 ops on CPU, dequantize + matmul otherwise) and logs the choice at DEBUG
level with the arguments ``(format, M, K, N, path)``. ``record_paths`` listens to those
records during an untimed warm-up pass (logging every call would slow the timed one).

When no record was seen (logging disabled, say), the modules' own ``path_for(rows)`` tells
the path the dispatcher would take; a quantized module with neither is reported as
"dequant+matmul (module)". Models loaded by transformers report the class of their
quantized Linear (e.g. gptqmodel's TorchQuantLinear).
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Iterator

from torch import nn

DISPATCH_LOGGER = "qwen2vl_quant.kernels.dispatch"
MODULE_FALLBACK = "dequant+matmul (module)"


class PathLog(logging.Handler):
    """Collects (M, path) from the dispatcher's DEBUG records; records at or above
    ``forward_level`` (what the user would have seen) go on to the parent loggers."""

    def __init__(self, forward_level: int) -> None:
        super().__init__(level=logging.DEBUG)
        self.forward_level = forward_level
        self.calls: Counter[tuple[int, str]] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if (isinstance(record.msg, str) and record.msg.startswith("quantized_linear") and len(args) >= 2
                and isinstance(args[-1], str)):
            m = args[1] if isinstance(args[1], int) else -1
            self.calls[(m, args[-1])] += 1
        elif record.levelno >= self.forward_level:
            logging.getLogger(DISPATCH_LOGGER.rpartition(".")[0]).handle(record)


@contextlib.contextmanager
def record_paths() -> Iterator[PathLog]:
    """Capture the dispatcher's path choices inside the block (and only there)."""
    logger = logging.getLogger(DISPATCH_LOGGER)
    handler = PathLog(forward_level=logger.getEffectiveLevel())
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # the DEBUG records are for us, not for the user's console
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def quantized_modules(model: nn.Module) -> list[nn.Module]:
    """Modules holding packed weights (ours: GPTQLinear/AWQLinear; gptqmodel's QuantLinear)."""
    return [m for m in model.modules() if "qweight" in dict(m.named_buffers(recurse=False))
            or "qweight" in dict(m.named_parameters(recurse=False))]


def describe_paths(model: nn.Module, log: PathLog | None, prefill_rows: int | None = None) -> str:
    """One short string for the table, e.g. "cpu_int4" or "decode triton_decode / prefill triton_gemm".

    prefill_rows: the prompt length, used only when the log saw nothing."""
    modules = quantized_modules(model)
    if not modules:
        return "bf16 (torch)"
    ours = [m for m in modules if type(m).__module__.startswith("qwen2vl_quant")]
    if not ours:  # loaded by transformers: name the library's Linear class
        return ", ".join(sorted({f"{type(m).__module__.split('.')[0]} {type(m).__name__}" for m in modules}))
    calls = set(log.calls) if log is not None else set()
    if not calls:
        if not all(hasattr(m, "path_for") for m in ours):
            return MODULE_FALLBACK
        rows = {1} | ({prefill_rows} if prefill_rows else set())
        calls = {(r, m.path_for(r)) for m in ours for r in rows}
    decode = sorted({p for (m, p) in calls if m == 1})
    prefill = sorted({p for (m, p) in calls if m != 1})
    if not prefill or decode == prefill:
        return ", ".join(decode or prefill)
    if not decode:
        return ", ".join(prefill)
    return f"decode {', '.join(decode)} / prefill {', '.join(prefill)}"
