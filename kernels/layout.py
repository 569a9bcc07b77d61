"""Which packed format a weight is in, as the compile-time switches the Triton kernels take.

The layouts themselves are defined in reference.py; this module only names them and
checks that a set of tensors is a well-formed instance of one, so that every launcher
rejects a bad call with the same clear ValueError instead of reading out of bounds.

    layout    bits  qweight           packed along  column order in a word   stored zero
    "gptq"    4, 8  int32 [K/pack, N]  K             -                        true zero - 1 (v1)
    "gptq_v2" 4, 8  int32 [K/pack, N]  K             -                        true zero
    "awq"     4     int32 [K, N/8]     N             AWQ_PACK_ORDER           true zero
    "awq"     8     int32 [K, N/4]     N             natural (as reference.awq_unpack_cols)

qzeros is always int32 [G, N/pack] packed along N in the same column order as the
layout's qweight uses for N (natural for GPTQ), scales fp16/bf16/fp32 [G, N].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .reference import values_per_word

LAYOUTS = ("gptq", "gptq_v2", "awq")
SCALE_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@dataclass(frozen=True)
class PackedFormat:
    """A layout at a bit width: the constexpr switches of the kernels in tiles.py."""

    layout: str
    bits: int

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.bits not in (4, 8):
            raise ValueError(f"bits must be 4 or 8, got {self.bits}")

    @property
    def pack(self) -> int:
        return values_per_word(self.bits)

    @property
    def pack_along_k(self) -> bool:
        return self.layout != "awq"

    @property
    def awq_order(self) -> bool:
        # AutoAWQ interleaves only its 4-bit words (llm-awq qmodule.py); 8-bit AWQ is read
        # in natural order, as reference.awq_unpack_cols does.
        return self.layout == "awq" and self.bits == 4

    @property
    def zero_offset(self) -> int:
        # GPTQ v1 checkpoints store zero - 1 (AutoGPTQ's off-by-one, reference.dequantize_gptq).
        return 1 if self.layout == "gptq" else 0

    def constexprs(self) -> dict[str, int | bool]:
        return {
            "BITS": self.bits,
            "PACK_ALONG_K": self.pack_along_k,
            "AWQ_ORDER": self.awq_order,
            "ZERO_OFFSET": self.zero_offset,
        }

    def describe(self) -> str:
        return f"{self.layout}-{self.bits}bit"


def resolve_group_size(group_size: int, in_features: int) -> int:
    """-1 (one group per column, as in the checkpoints' config) -> K; else checked to divide K."""
    group = in_features if group_size == -1 else group_size
    if group <= 0 or in_features % group:
        raise ValueError(f"group_size {group_size} does not divide in_features {in_features}")
    return group


def packed_shape(fmt: PackedFormat, qweight: torch.Tensor) -> tuple[int, int]:
    """(K, N) of the Linear that qweight stores."""
    if qweight.dim() != 2:
        raise ValueError(f"qweight must be 2-D, got shape {tuple(qweight.shape)}")
    rows, cols = qweight.shape
    return (rows * fmt.pack, cols) if fmt.pack_along_k else (rows, cols * fmt.pack)


def check_packed(
    fmt: PackedFormat,
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    group_size: int,
) -> tuple[int, int, int]:
    """Validate packed tensors against fmt; return (K, N, group) or raise ValueError."""
    for name, t in (("qweight", qweight), ("qzeros", qzeros)):
        if t.dtype != torch.int32:
            raise ValueError(f"{name} must be int32, got {t.dtype}")
    if scales.dtype not in SCALE_DTYPES:
        raise ValueError(f"scales must be one of {SCALE_DTYPES}, got {scales.dtype}")
    k, n = packed_shape(fmt, qweight)
    group = resolve_group_size(group_size, k)
    groups = k // group
    if n % fmt.pack:
        raise ValueError(f"out_features {n} must be a multiple of {fmt.pack} for {fmt.describe()}")
    if tuple(qzeros.shape) != (groups, n // fmt.pack):
        raise ValueError(
            f"qzeros must be [{groups}, {n // fmt.pack}] for K={k}, N={n}, group {group}; got {tuple(qzeros.shape)}"
        )
    if tuple(scales.shape) != (groups, n):
        raise ValueError(f"scales must be [{groups}, {n}] for K={k}, N={n}, group {group}; got {tuple(scales.shape)}")
    devices = {qweight.device, qzeros.device, scales.device}
    if len(devices) != 1:
        raise ValueError(f"qweight, qzeros and scales must share a device, got {sorted(map(str, devices))}")
    for name, t in (("qweight", qweight), ("qzeros", qzeros), ("scales", scales)):
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous")
    return k, n, group
