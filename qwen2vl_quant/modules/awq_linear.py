"""AWQ GEMM Linear whose buffers are exactly the checkpoint tensors (see quant_linear.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..kernels.reference import dequantize_awq, values_per_word


class AWQLinear(nn.Module):
    """y = x @ dequant(qweight)^T + bias, for AWQ GEMM checkpoints (bits 4 or 8).

    Buffers: qweight int32 [K, N/pack], qzeros int32 [G, N/pack], scales fp16 [G, N]
    (kernels/reference.py), and bias [N] in the compute dtype when the Linear had one.
    """

    layout = "awq"

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bits: int,
        group_size: int,
        bias: bool,
        dtype: torch.dtype = torch.bfloat16,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        pack = values_per_word(bits)
        group = in_features if group_size == -1 else group_size
        if out_features % pack or in_features % group:
            raise ValueError(
                f"cannot pack a {in_features}->{out_features} Linear at {bits} bits, group {group_size}"
            )
        self.in_features, self.out_features = in_features, out_features
        self.bits, self.group_size = bits, group_size
        self.compute_dtype = dtype
        groups = in_features // group
        self.register_buffer("qweight", torch.zeros(in_features, out_features // pack, dtype=torch.int32, device=device))
        self.register_buffer("qzeros", torch.zeros(groups, out_features // pack, dtype=torch.int32, device=device))
        self.register_buffer("scales", torch.zeros(groups, out_features, dtype=torch.float16, device=device))
        if bias:
            self.register_buffer("bias", torch.zeros(out_features, dtype=dtype, device=device))
        else:
            self.bias = None

    def dequantize(self) -> torch.Tensor:
        """Dense weight [N, K] in the compute dtype (the nn.Linear.weight it stands for)."""
        group = self.in_features if self.group_size == -1 else self.group_size
        dense = dequantize_awq(self.qweight, self.qzeros, self.scales, group, self.bits, dtype=torch.float32)
        return dense.T.to(self.compute_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.dequantize().to(x.dtype), bias)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, bits={self.bits}, group_size={self.group_size}"
