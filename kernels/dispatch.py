"""The one entry point the quantized Linear modules call: prepare once, then run.

    prepared = prepare("gptq", 4, 128, qweight, qzeros, scales, g_idx, device)   # at load
    y = quantized_linear(x, prepared, bias)                                     # per call
    resolve_path(prepared, m)  # the path quantized_linear takes for M rows

Paths (path="auto" picks the first that applies):
    CUDA   triton_decode   M <= 16   split-K dequant-GEMV (decode.py)
           triton_gemm     M < 256   tiled dequant-GEMM (gemm.py)
           triton_dequant  larger M  Triton dequantize + torch.matmul (dequant.py)
    CPU, with the C++ kernels (cpu_fused.py, built at first use; one copy of the weight):
           cpu_gemv        M <= the measured switch point (at most FUSED_GEMV_MAX_M): fused
                           dequantize + GEMV on the packed words
           cpu_gemm        larger M: a GEMM with BF16 dot products on the codes (AVX512-BF16;
                           from DEQUANTIZED_PANEL_ROWS on its panel dequantized to bf16), or
                           with float32 FMAs on its panel dequantized to float32 where those
                           are clearly faster (cpu_fused.float32_gemm(): measured once per
                           process), elsewhere per-thread dequantized blocks times torch's matmul
           cpu_dequant     M >= the dense switch (measured once per process, at its first
                           prompt), on CPUs whose bf16 matmul is clearly faster than cpu_gemm
                           (never here): C++ dequantize, in column blocks, + torch.matmul
    CPU, where the C++ kernels cannot be built (one log line says why):
           cpu_int4        4-bit, M <= CPU_INT4_MAX_M: torch's int4 op (cpu.py; runs in bf16)
           cpu_int8        8-bit, M <= CPU_INT8_MAX_M (grouped: CPU_INT8_GROUPED_MAX_M):
                           torch's int8 op (bf16), once per group
           torch_dequant   otherwise: vectorised torch dequantize + matmul (torch_dequant.py)
    With a dense_cache (calibration runs each new layer over every sample), larger M takes
    torch_dequant, which dequantizes once per layer instead of once per call.
    any    reference       reference.py dequantize (to x's dtype) + matmul, the definition
Under TRITON_INTERPRET=1 the triton_* paths also run on CPU tensors (tests), but only when
asked for by name. An explicit path that cannot run raises ValueError; nothing falls back
silently.

Act-order GPTQ: prepare() permutes the weight's input rows once so groups become
contiguous (Marlin, ExLlamaV2), and each call gathers x's columns with the same
permutation. The permuted qweight is a second copy of the packed weight (only for
act-order); the reference path keeps reading the checkpoint tensors as given. On CPU the
C++ kernels read the checkpoint tensors themselves; torch's int4/int8 op tables are a
converted copy (as large as the packed weight), built on the first call that takes those
paths. No path
caches a dense weight on its own: a caller may pass ``dense_cache`` (calibration runs each
freshly quantized layer over every sample, and keeps its dequantized weight meanwhile).

prepare() checks the packed tensors and works out which paths can run the weight, once;
each call only checks its input. Each call counts its (M, path) in ``PreparedWeight.calls``,
which the benchmark reads to report the path taken.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field

import torch

from . import cpu_fused
from .configs import DECODE_MAX_M, GEMM_MAX_M
from .cpu_fused import FUSED_GEMV_MAX_M, FusedWeight, fused_gemv, prepare_fused
from .cpu import (
    CpuInt4Weight,
    CpuInt8Weight,
    act_order_perm,
    int4_matmul,
    int4_unsupported,
    int8_matmul,
    int8_unsupported,
    prepare_int4,
    prepare_int8,
)
from .decode import decode_matmul
from .dequant import dequant_matmul
from .gemm import gemm_matmul
from .launch import ACTIVATION_DTYPES, interpreting
from .layout import PackedFormat, check_packed
from .reference import dequantize, pack_rows, unpack_rows
from .torch_dequant import dequantize_torch

TRITON_PATHS = ("triton_decode", "triton_gemm", "triton_dequant")
CPP_PATHS = ("cpu_gemv", "cpu_gemm", "cpu_dequant")  # the C++ kernels of cpu_fused.cpp
CPU_PATHS = CPP_PATHS + ("cpu_int4", "cpu_int8")
PATHS = TRITON_PATHS + CPU_PATHS + ("torch_dequant", "reference")
# Where torch's CPU ops stop beating torch_dequant + matmul (their cost grows with M,
# dequantizing does not); measured on 2 cores, benchmarks/results/kernels.md.
CPU_INT4_MAX_M = 64
CPU_INT8_MAX_M = 64
# Grouped 8-bit runs the int8 op once per group: G launches per call. Below
# CPU_INT8_LARGE_WEIGHT weights, dequantizing is cheap enough to win from M = 64 on
# (2B q/o/k/v); larger weights (gate/up, down) keep the int8 op up to CPU_INT8_MAX_M
# (benchmarks/results/kernels.md).
CPU_INT8_GROUPED_MAX_M = 16
CPU_INT8_LARGE_WEIGHT = 2**23


@dataclass(frozen=True, eq=False)
class PreparedWeight:
    """A quantized weight converted once for the device it runs on (see module docstring)."""

    fmt: PackedFormat
    in_features: int
    out_features: int
    group: int  # rows per group (K for group_size -1)
    device: torch.device
    # The checkpoint tensors, on device: what the reference path reads.
    qweight: torch.Tensor
    qzeros: torch.Tensor
    scales: torch.Tensor
    g_idx: torch.Tensor | None
    # Input permutation making the groups contiguous (act-order), None if already so.
    perm: torch.Tensor | None
    # qweight with rows in perm order (qweight itself when perm is None), what the Triton
    # kernels and torch_dequant read; None when g_idx cannot be sorted into groups.
    sorted_qweight: torch.Tensor | None
    fused: FusedWeight | None  # what the C++ kernels read besides sorted_qweight (CPU)
    gemv_max_m: int  # cpu_gemv up to this many rows (measured once per shape on this machine)
    unsupported: tuple[tuple[str, str], ...]  # (path, reason) for paths this weight cannot use
    available: tuple[str, ...] = ()  # paths that can run it, in order of preference (prepare)
    calls: Counter = field(default_factory=Counter)  # (M, path) -> calls, for the benchmark
    # torch's int4 / int8 op tables, converted on the first call that takes cpu_int4 / cpu_int8.
    _op_tables: dict = field(default_factory=dict)

    def cpu_op_weight(self) -> CpuInt4Weight | CpuInt8Weight:
        if "weight" not in self._op_tables:
            make = prepare_int4 if self.fmt.bits == 4 else prepare_int8
            self._op_tables["weight"] = make(self.fmt, self.qweight, self.qzeros, self.scales, self.group, self.perm)
        return self._op_tables["weight"]

    @property
    def layout(self) -> str:
        return self.fmt.layout

    @property
    def bits(self) -> int:
        return self.fmt.bits


def _permute_rows(fmt: PackedFormat, qweight: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    codes = unpack_rows(qweight, fmt.bits)[perm.to(qweight.device)]
    return pack_rows(codes, fmt.bits).contiguous()


def prepare(
    layout: str,
    bits: int,
    group_size: int,
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    g_idx: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> PreparedWeight:
    """Check the packed tensors and convert them once for `device` (default: qweight's).

    layout "gptq" (v1 zero offset), "gptq_v2" or "awq"; group_size -1 means one group;
    g_idx only for GPTQ (None means contiguous groups). Raises ValueError on a bad layout.
    """
    fmt = PackedFormat(layout, bits)
    device = torch.device(device) if device is not None else qweight.device
    qweight, qzeros, scales = qweight.to(device), qzeros.to(device), scales.to(device)
    k, n, group = check_packed(fmt, qweight, qzeros, scales, group_size)
    if g_idx is not None:
        if fmt.layout == "awq":
            raise ValueError("AWQ has no g_idx")
        if g_idx.shape != (k,) or g_idx.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"g_idx must be int32 [{k}], got {g_idx.dtype} {tuple(g_idx.shape)}")
        g_idx = g_idx.to(device)
    unsupported: list[tuple[str, str]] = []
    perm, permutable = act_order_perm(g_idx, k, group)
    sorted_qweight = None
    if not permutable:
        reason = "g_idx is not a permutation of contiguous groups"
        unsupported += [(p, reason) for p in PATHS if p != "reference"]
    else:
        sorted_qweight = qweight if perm is None else _permute_rows(fmt, qweight, perm)
        if k // group > 1 and group % 16:
            unsupported += [(p, f"group size {group} is not a multiple of 16") for p in TRITON_PATHS]
    fused, gemv_max_m = None, 0
    if device.type == "cpu":
        why4 = int4_unsupported(fmt, k, n, group)
        why8 = int8_unsupported(fmt, k, n, group)
        unsupported += [(p, why) for p, why in (("cpu_int4", why4), ("cpu_int8", why8)) if why]
        if permutable and cpu_fused.extension() is not None:
            fused = prepare_fused(fmt, sorted_qweight, qzeros, scales, group)
            gemv_max_m = cpu_fused.gemv_switch(fused)
        else:
            why = cpu_fused.failure or "g_idx is not a permutation of contiguous groups"
            unsupported += [(p, f"C++ CPU kernels unavailable: {why}") for p in CPP_PATHS]
    if perm is not None:
        perm = perm.to(device)
    unsupported = tuple(unsupported)
    return PreparedWeight(fmt, k, n, group, device, qweight, qzeros, scales, g_idx, perm, sorted_qweight, fused,
                          gemv_max_m, unsupported, _available_paths(device, unsupported))


def _available_paths(device: torch.device, unsupported: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    blocked = {p for p, _ in unsupported}
    paths: list[str] = []
    if device.type == "cuda" or (device.type == "cpu" and interpreting()):
        paths += [p for p in TRITON_PATHS if p not in blocked]
    if device.type == "cpu":
        paths += [p for p in CPU_PATHS if p not in blocked]
    if "torch_dequant" not in blocked:
        paths.append("torch_dequant")
    paths.append("reference")
    return tuple(paths)


def available_paths(prepared: PreparedWeight) -> tuple[str, ...]:
    """Paths that can run this weight on its device, in order of preference."""
    return prepared.available


def resolve_path(prepared: PreparedWeight, m: int, path: str = "auto", calibrating: bool = False) -> str:
    """The path quantized_linear takes for an [M, K] input; ValueError if it cannot run."""
    available = prepared.available
    if path != "auto":
        if path not in PATHS:
            raise ValueError(f"unknown path {path!r}; paths: {PATHS}")
        if path not in available:
            reasons = dict(prepared.unsupported)
            why = reasons.get(path, f"not available on {prepared.device.type}")
            raise ValueError(f"path {path!r} cannot run this {prepared.fmt.describe()} weight: {why}")
        if path == "triton_decode" and m > DECODE_MAX_M:
            raise ValueError(f"triton_decode takes at most {DECODE_MAX_M} rows, got {m}")
        if path == "cpu_gemv" and m > FUSED_GEMV_MAX_M:
            raise ValueError(f"cpu_gemv takes at most {FUSED_GEMV_MAX_M} rows, got {m}")
        return path
    if prepared.device.type == "cuda" and "triton_decode" in available:
        return "triton_decode" if m <= DECODE_MAX_M else "triton_gemm" if m <= GEMM_MAX_M else "triton_dequant"
    if prepared.fused is not None:
        if m <= prepared.gemv_max_m:
            return "cpu_gemv"
        if calibrating:
            return "torch_dequant"
        # The dense switch (one of DENSE_PROBE_M, or never) is measured once per process, at
        # the first prompt long enough to take it: decoding alone never pays for the probe.
        dense_from = cpu_fused.dense_switch() if m >= cpu_fused.DENSE_PROBE_M[0] else None
        return "cpu_dequant" if dense_from is not None and m >= dense_from else "cpu_gemm"
    if "cpu_int4" in available and m <= CPU_INT4_MAX_M:
        return "cpu_int4"
    if "cpu_int8" in available:
        large = prepared.in_features * prepared.out_features >= CPU_INT8_LARGE_WEIGHT
        groups = prepared.in_features // prepared.group
        limit = CPU_INT8_MAX_M if groups == 1 or large else CPU_INT8_GROUPED_MAX_M
        if m <= limit:
            return "cpu_int8"
    return "torch_dequant" if "torch_dequant" in available else "reference"


def _reference(x: torch.Tensor, p: PreparedWeight) -> torch.Tensor:
    return x @ dequantize(p.layout, p.qweight, p.qzeros, p.scales, p.group, p.bits, p.g_idx, dtype=x.dtype)


def quantized_linear(
    x: torch.Tensor,
    prepared: PreparedWeight,
    bias: torch.Tensor | None = None,
    path: str = "auto",
    dense_cache: dict[torch.dtype, torch.Tensor] | None = None,
) -> torch.Tensor:
    """y = x @ dequant(W) + bias for x [..., K] in bf16/fp16 -> [..., N] in x's dtype.

    dense_cache: where the torch_dequant path keeps the dequantized weight between calls
    (same numbers, dequantized once); None dequantizes on every call, holding no copy.
    """
    p = prepared
    if x.dtype not in ACTIVATION_DTYPES:
        raise ValueError(f"x must be bfloat16 or float16, got {x.dtype}")
    if x.shape[-1] != p.in_features:
        raise ValueError(f"x has {x.shape[-1]} features, the weight has K={p.in_features}")
    if x.device != p.device:
        raise ValueError(f"x is on {x.device}, the prepared weight on {p.device}")
    if bias is not None and bias.shape != (p.out_features,):
        raise ValueError(f"bias must be [{p.out_features}], got {tuple(bias.shape)}")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, p.in_features)
    m = x2.shape[0]
    chosen = resolve_path(p, m, path, calibrating=dense_cache is not None)
    p.calls[(m, chosen)] += 1
    if m == 0:
        y = x2.new_empty((0, p.out_features))
    elif chosen == "reference":
        y = _reference(x2, p)
    else:
        xk = x2 if p.perm is None else x2[:, p.perm]
        if chosen == "cpu_gemv":
            y = fused_gemv(xk, p.fused)
        elif chosen == "cpu_gemm":
            y = cpu_fused.matmul(xk, p.fused)
        elif chosen == "cpu_dequant":
            y = cpu_fused.dense_matmul(xk, p.fused)
        elif chosen == "cpu_int4":
            y = int4_matmul(xk, p.cpu_op_weight())
        elif chosen == "cpu_int8":
            y = int8_matmul(xk, p.cpu_op_weight())
        elif chosen == "torch_dequant":
            dense = None if dense_cache is None else dense_cache.get(x.dtype)
            if dense is None:
                dense = dequantize_torch(p.fmt, p.sorted_qweight, p.qzeros, p.scales, p.group, x.dtype)
                if dense_cache is not None:
                    dense_cache[x.dtype] = dense
            y = xk @ dense
        else:
            run = {"triton_decode": decode_matmul, "triton_gemm": gemm_matmul, "triton_dequant": dequant_matmul}[chosen]
            with torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext():
                y = run(xk.contiguous(), p.sorted_qweight, p.qzeros, p.scales, p.fmt, p.group,
                        checked=(p.in_features, p.out_features, p.group))
    if bias is not None:
        y = y + bias.to(y.dtype)
    return y.reshape(*lead, p.out_features)
