"""Round-to-nearest: the baseline every calibrated method must beat."""

from __future__ import annotations

import torch

from ..kernels.layout import resolve_group_size
from .quantizer import fit_grid, quantize_codes
from .weights import QuantizedWeight


def rtn_quantize(weight: torch.Tensor, *, bits: int, group_size: int, sym: bool, min_zero: int = 1) -> QuantizedWeight:
    """Quantize ``weight`` [N, K] group by group with a min/max grid, no calibration."""
    rows, columns = weight.shape
    group = resolve_group_size(group_size, columns)
    W = weight.detach().float()
    codes, scales, zeros = [], [], []
    for start in range(0, columns, group):
        grid = fit_grid(W[:, start : start + group], bits, sym, min_zero)
        codes.append(quantize_codes(W[:, start : start + group], grid))
        scales.append(grid.scale)
        zeros.append(grid.zero)
    return QuantizedWeight(
        codes=torch.cat(codes, dim=1).to(torch.uint8),
        scales=torch.stack(scales).to(torch.float16),
        zeros=torch.stack(zeros).to(torch.int32),
        g_idx=(torch.arange(columns, device=W.device) // group).to(torch.int32),
        bits=bits,
        group_size=group,
    )
