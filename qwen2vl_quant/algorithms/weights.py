"""The result every algorithm returns (GPTQ, AWQ, round to nearest): integer codes and
their grids, independent of any packed layout (formats/ packs them)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class QuantizedWeight:
    """Integer codes and grids of one Linear, independent of any packing.

    codes: uint8 [N, K]; scales: fp16 [G, N]; zeros: int32 [G, N] (the true zero point);
    g_idx: int32 [K], the group of each input channel; group_size: input channels per
    group, resolved (K when the config said -1). W[n, k] ~ (codes - zeros[g]) * scales[g].
    """

    codes: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor
    g_idx: torch.Tensor
    bits: int
    group_size: int

    def dequantize(self) -> torch.Tensor:
        """Dense float32 weight [N, K]."""
        g = self.g_idx.long()
        return (self.codes.float() - self.zeros[g].T.float()) * self.scales[g].T.float()

    def rows(self, rows: slice) -> "QuantizedWeight":
        """The output rows ``rows`` of this weight (one Linear of a stacked solve)."""
        return QuantizedWeight(self.codes[rows], self.scales[:, rows], self.zeros[:, rows], self.g_idx, self.bits,
                               self.group_size)
