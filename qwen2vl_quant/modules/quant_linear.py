"""Quantized Linear modules whose buffers are exactly the checkpoint tensors.

Holding the on-disk tensors (not a friendlier in-memory form) means saving is a plain
state_dict and loading is a plain load_state_dict: there is one layout, in kernels/reference.py.
The forward goes through kernels.dispatch, which picks the fastest path for the device and
the number of rows (Triton on CUDA; torch's int4/int8 ops or a vectorised dequantize on
CPU) and converts the layout for that path once, on first use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..algorithms.weights import QuantizedWeight
from ..formats.awq import pack_awq
from ..formats.gptq import pack_gptq
from ..kernels.dispatch import PreparedWeight, prepare, quantized_linear, resolve_path
from ..kernels.reference import dequantize, values_per_word


class QuantLinear(nn.Module):
    """Common part of GPTQLinear and AWQLinear: buffers, dispatch, path reporting."""

    layout = ""

    def __init__(self, in_features: int, out_features: int, *, bits: int, group_size: int, bias: bool,
                 dtype: torch.dtype, device: torch.device | str | None, packed_shapes: dict[str, tuple[int, ...]]) -> None:
        """group_size: input channels per group, resolved (K for one group; a config's -1 is
        resolved where a weight is quantized or a checkpoint loaded)."""
        super().__init__()
        pack = values_per_word(bits)
        if group_size <= 0 or in_features % group_size or out_features % pack or in_features % pack:
            raise ValueError(f"cannot pack a {in_features}->{out_features} Linear at {bits} bits, group {group_size}")
        self.in_features, self.out_features = in_features, out_features
        self.bits, self.group_size = bits, group_size
        self.compute_dtype = dtype
        # "auto" lets kernels.dispatch choose; benchmarks and tests may pin a path by name.
        self.kernel_path = "auto"
        for name, shape in packed_shapes.items():
            dtype_of = torch.float16 if name == "scales" else torch.int32
            self.register_buffer(name, torch.zeros(shape, dtype=dtype_of, device=device))
        if bias:
            self.register_buffer("bias", torch.zeros(out_features, dtype=dtype, device=device))
        else:
            self.bias = None
        self._prepared: PreparedWeight | None = None
        self._dense_cache: dict[torch.dtype, torch.Tensor] | None = None
        self._register_load_state_dict_pre_hook(self._forget_prepared)

    def _forget_prepared(self, *args, **kwargs) -> None:
        self._prepared = None
        if self._dense_cache is not None:
            self._dense_cache = {}

    def _apply(self, fn, recurse=True):
        # .to(device) / .half() replace the buffers: the prepared copies are stale then.
        self._forget_prepared()
        return super()._apply(fn, recurse)

    def keep_dequantized(self, keep: bool) -> None:
        """Keep the dequantized weight between forwards that take the dequantize path.

        Calibration runs each freshly quantized layer over every sample at large M, where
        the path is dequantize + matmul: dequantizing once per layer instead of once per
        sample gives the same numbers. Off by default, since it holds a dense copy.
        """
        self._dense_cache = {} if keep else None

    @classmethod
    def from_weight(cls, linear: nn.Linear, qw: QuantizedWeight) -> "QuantLinear":
        """A module holding ``qw`` packed in this class's layout, with ``linear``'s bias,
        on ``linear``'s device, computing in its dtype."""
        module = cls(linear.in_features, linear.out_features, bits=qw.bits, group_size=qw.group_size,
                     bias=linear.bias is not None, dtype=linear.weight.dtype, device=linear.weight.device)
        for name, tensor in cls.pack(qw).items():
            getattr(module, name).copy_(tensor)
        if linear.bias is not None:
            module.bias.copy_(linear.bias.detach())
        return module

    @staticmethod
    def pack(qw: QuantizedWeight) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def dequantize(self) -> torch.Tensor:
        """Dense weight [N, K] in the compute dtype (the nn.Linear.weight it stands for)."""
        dense = dequantize(self.layout, self.qweight, self.qzeros, self.scales, self.group_size, self.bits,
                           getattr(self, "g_idx", None), dtype=torch.float32)
        return dense.T.to(self.compute_dtype)

    def prepared(self) -> PreparedWeight:
        if self._prepared is None or self._prepared.device != self.qweight.device:
            self._prepared = prepare(self.layout, self.bits, self.group_size, self.qweight, self.qzeros, self.scales,
                                     getattr(self, "g_idx", None), self.qweight.device)
        return self._prepared

    def path_for(self, rows: int) -> str:
        """The kernel path a forward with ``rows`` rows of input takes."""
        return resolve_path(self.prepared(), rows, self.kernel_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        if x.dtype not in (torch.bfloat16, torch.float16):
            # The kernels take 16-bit activations; float32 (accuracy checks) dequantizes.
            return F.linear(x, self.dequantize().to(x.dtype), bias)
        return quantized_linear(x, self.prepared(), bias, self.kernel_path, self._dense_cache)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, bits={self.bits}, group_size={self.group_size}"


class GPTQLinear(QuantLinear):
    """y = x @ dequant(qweight) + bias, for GPTQ v1 checkpoints (bits 4 or 8)."""

    layout = "gptq"

    def __init__(self, in_features: int, out_features: int, *, bits: int, group_size: int, bias: bool,
                 dtype: torch.dtype = torch.bfloat16, device: torch.device | str | None = None) -> None:
        pack = values_per_word(bits)
        groups = in_features // group_size
        super().__init__(in_features, out_features, bits=bits, group_size=group_size, bias=bias, dtype=dtype,
                         device=device, packed_shapes={
                             "qweight": (in_features // pack, out_features),
                             "qzeros": (groups, out_features // pack),
                             "scales": (groups, out_features),
                             "g_idx": (in_features,),
                         })

    @staticmethod
    def pack(qw: QuantizedWeight) -> dict[str, torch.Tensor]:
        return pack_gptq(qw.codes, qw.zeros, qw.scales, qw.g_idx, qw.bits)


class AWQLinear(QuantLinear):
    """y = x @ dequant(qweight) + bias, for AWQ GEMM checkpoints (bits 4; 8 in natural order)."""

    layout = "awq"

    def __init__(self, in_features: int, out_features: int, *, bits: int, group_size: int, bias: bool,
                 dtype: torch.dtype = torch.bfloat16, device: torch.device | str | None = None) -> None:
        pack = values_per_word(bits)
        groups = in_features // group_size
        super().__init__(in_features, out_features, bits=bits, group_size=group_size, bias=bias, dtype=dtype,
                         device=device, packed_shapes={
                             "qweight": (in_features, out_features // pack),
                             "qzeros": (groups, out_features // pack),
                             "scales": (groups, out_features),
                         })

    @staticmethod
    def pack(qw: QuantizedWeight) -> dict[str, torch.Tensor]:
        return pack_awq(qw.codes, qw.zeros, qw.scales, qw.bits)
