"""Padding the MLP intermediate size so that vLLM can split it over several GPUs.

vLLM's quantized kernels need each GPU's slice of the intermediate size to divide by 128
and by the group size. Qwen padded Qwen2-VL-72B's 29568 to 29696 for that (DESIGN.md).
Zero rows in gate/up give act(0) * 0 = 0, and zero columns in down_proj read those zeros,
so the padded layer computes exactly what the original does; GPTQ sees the padded inputs
as dead channels and quantizes their weights to exactly zero.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..arch import ArchSpec
from ..errors import ConfigError
from ..modules import replace_module

KERNEL_TILE = 128  # vLLM's Marlin / exllama kernels split K in multiples of 128


def padded_intermediate_size(size: int, tensor_parallel: int, group_size: int) -> int:
    """Smallest size >= ``size`` whose 1/tensor_parallel slice divides by 128 and the group."""
    if tensor_parallel < 1:
        raise ConfigError(f"tensor-parallel degree must be at least 1, got {tensor_parallel}")
    step = math.lcm(KERNEL_TILE, group_size if group_size > 0 else 1) * tensor_parallel
    return -(-size // step) * step


def pad_mlp(layer: nn.Module, spec: ArchSpec, new_size: int) -> None:
    """Grow gate/up (output rows) and down (input columns) of the layer's MLP with zeros."""
    *_, gate_up, (down,) = spec.sequential_groups
    old = layer.get_submodule(gate_up[0]).out_features
    if new_size == old:
        return
    if new_size < old:
        raise ConfigError(f"cannot pad the intermediate size {old} down to {new_size}")
    for name in gate_up:
        replace_module(layer, name, _grow(layer.get_submodule(name), out_features=new_size))
    replace_module(layer, down, _grow(layer.get_submodule(down), in_features=new_size))
    layer.get_submodule(spec.decoder.mlp).intermediate_size = new_size


def _grow(linear: nn.Linear, *, in_features: int | None = None, out_features: int | None = None) -> nn.Linear:
    in_features = in_features or linear.in_features
    out_features = out_features or linear.out_features
    weight = linear.weight.detach()
    grown = nn.Linear(in_features, out_features, bias=linear.bias is not None, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        grown.weight.zero_()
        grown.weight[: weight.shape[0], : weight.shape[1]] = weight
        if linear.bias is not None:
            grown.bias.zero_()
            grown.bias[: linear.bias.shape[0]] = linear.bias
    return grown.requires_grad_(False)
