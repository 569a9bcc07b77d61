"""Uniform integer grids: fitting scale/zero per row and rounding to them.

Pure tensor functions, no modules or devices. The asymmetric grid follows the GPTQ
reference (IST-DASLab/gptq, quant.py); the symmetric one fixes the zero at the middle code
as AutoGPTQ and GPTQModel do, so ``sym=True`` checkpoints need no stored zero per group.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Grid:
    """Per-row grid for a [N, k] slice of a weight: w ~ (q - zero) * scale, q in [0, maxq]."""

    scale: torch.Tensor  # float32 [N]
    zero: torch.Tensor  # float32 [N], integer valued
    maxq: int


def fit_grid(w: torch.Tensor, bits: int, sym: bool, min_zero: int = 0) -> Grid:
    """Min/max grid for each row of ``w`` [N, k] (the range always includes 0).

    min_zero: smallest zero point allowed. GPTQ v1 checkpoints cannot store a zero of 0
    (kernels/reference.py), so GPTQ asks for 1: a row whose minimum rounds to code 0 gets
    its grid refitted to [-scale, xmax] with zero 1 instead of being clipped.
    """
    maxq = 2**bits - 1
    w = w.float()
    xmin = w.min(dim=1).values.clamp(max=0)
    xmax = w.max(dim=1).values.clamp(min=0)
    if sym:
        xmax = torch.maximum(xmin.abs(), xmax)
        xmin = torch.where(xmin < 0, -xmax, xmin)
    empty = (xmin == 0) & (xmax == 0)
    xmin = torch.where(empty, torch.full_like(xmin, -1.0), xmin)
    xmax = torch.where(empty, torch.full_like(xmax, 1.0), xmax)
    # Checkpoints store scales in fp16: fit on the rounded value so that the codes chosen
    # here (and GPTQ's error feedback) match what the loaders will dequantize.
    scale = ((xmax - xmin) / maxq).clamp(min=1e-6).half().float()
    if sym:
        zero = torch.full_like(scale, (maxq + 1) / 2)
    else:
        zero = torch.round(-xmin / scale)
        low = zero < min_zero
        if low.any():
            refit = (xmax / (maxq - min_zero)).clamp(min=1e-6).half().float()
            scale = torch.where(low, refit, scale)
            zero = torch.where(low, torch.full_like(zero, float(min_zero)), zero)
    return Grid(scale=scale, zero=zero, maxq=maxq)


def quantize_codes(w: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Integer codes of ``w`` [N, k] (or [N]) on ``grid``, as float32 in [0, maxq]."""
    scale, zero = grid.scale, grid.zero
    if w.dim() == 2:
        scale, zero = scale[:, None], zero[:, None]
    return torch.clamp(torch.round(w.float() / scale) + zero, 0, grid.maxq)


def dequantize_codes(codes: torch.Tensor, grid: Grid) -> torch.Tensor:
    scale, zero = grid.scale, grid.zero
    if codes.dim() == 2:
        scale, zero = scale[:, None], zero[:, None]
    return (codes - zero) * scale
