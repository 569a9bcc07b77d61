"""Argument checks and device facts shared by the Triton launchers."""

from __future__ import annotations

import torch
import triton

from .configs import DEFAULT_SM_COUNT
from .layout import PackedFormat, check_packed

ACTIVATION_DTYPES = (torch.bfloat16, torch.float16)


def interpreting() -> bool:
    """True when TRITON_INTERPRET=1 was set before the kernels were defined."""
    return bool(triton.knobs.runtime.interpret)


def check_launch(
    name: str,
    x: torch.Tensor,
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    fmt: PackedFormat,
    group_size: int,
    max_m: int | None = None,
    checked: tuple[int, int, int] | None = None,
) -> tuple[int, int, int, int]:
    """Validate a launch; return (M, K, N, group) or raise ValueError naming what is wrong.

    checked: (K, N, group) of a packed weight that dispatch.prepare() has already checked;
    then only x is checked (the per-call cost of the hot path)."""
    k, n, group = checked or check_packed(fmt, qweight, qzeros, scales, group_size)
    if x.dim() != 2:
        raise ValueError(f"{name}: x must be 2-D [M, K], got shape {tuple(x.shape)}")
    if x.dtype not in ACTIVATION_DTYPES:
        raise ValueError(f"{name}: x must be bfloat16 or float16, got {x.dtype}")
    m = x.shape[0]
    if x.shape[1] != k:
        raise ValueError(f"{name}: x has {x.shape[1]} features, the weight has K={k}")
    if m < 1:
        raise ValueError(f"{name}: x has no rows")
    if max_m is not None and m > max_m:
        raise ValueError(f"{name}: M={m} exceeds {max_m}, the largest M this kernel is built for")
    if x.stride(1) != 1:
        raise ValueError(f"{name}: x rows must be contiguous (stride(1) == 1)")
    if x.device != qweight.device:
        raise ValueError(f"{name}: x is on {x.device}, the weight on {qweight.device}")
    if k // group > 1 and group % 16:
        raise ValueError(f"{name}: group size {group} must be a multiple of 16")
    if x.device.type != "cuda" and not interpreting():
        raise ValueError(
            f"{name}: Triton kernels need CUDA tensors (CPU tensors only under TRITON_INTERPRET=1, "
            "set before the kernels are imported)"
        )
    return m, k, n, group


def sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return DEFAULT_SM_COUNT


def dot_in_fp32(x: torch.Tensor) -> bool:
    """tl.dot operands in fp32 under the interpreter, whose bf16 dot is wrong (DESIGN.md 4).

    On a GPU the MMA takes x's dtype and the fp32-dequantized weight rounded to it, with an
    fp32 accumulator, as Marlin and gemlite do; that rounding is also what the reference
    path does (it dequantizes to x's dtype before the matmul).
    """
    return x.device.type != "cuda"
