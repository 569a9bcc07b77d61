"""GPTQ for one decoder layer: collect Hessians group by group, solve, swap in GPTQLinear.

True-sequential order (q/k/v, then o, then gate/up, then down): each group's Hessian is
collected with the earlier groups already quantized, so it sees the inputs the quantized
model will really produce (AutoGPTQ ``true_sequential``); pipeline/sequential.py walks the
layer so that this costs one forward pass, not four.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from ..algorithms.gptq import HessianAccumulator, QuantizedWeight, gptq_quantize
from ..algorithms.rtn import rtn_quantize
from ..arch import ArchSpec
from ..config import GPTQConfig, RTNConfig
from ..formats.gptq import pack_gptq
from ..modules.quant_linear import GPTQLinear
from ..report import LinearReport
from .layerwise import StepResult
from .runner import ErrorMeter, LayerRunner
from .sequential import quantize_sequentially


def quantize_layer_gptq(
    layer: nn.Module, index: int, runner: LayerRunner, meter: ErrorMeter, spec: ArchSpec, config: GPTQConfig
) -> StepResult:
    """Replace the layer's Linears with GPTQLinear in place; one report per Linear."""
    reports: list[LinearReport] = []

    def solve(group: tuple[str, ...], hessian: HessianAccumulator | None) -> None:
        reports.extend(_solve_group(layer, index, group, hessian, config))

    if config.true_sequential:
        outputs = quantize_sequentially(layer, runner, solve, meter, runner.inputs[0].hidden.device)
        return StepResult(reports, outputs)
    # All Hessians from the float layer in one pass, then solve every group.
    hessians = _collect_hessians(layer, runner, list(spec.sequential_groups))
    for group in spec.sequential_groups:
        solve(group, hessians[group[0]])
    return StepResult(reports)


def quantize_layer_rtn(
    layer: nn.Module, index: int, runner: LayerRunner, meter: ErrorMeter, config: RTNConfig
) -> StepResult:
    """Round-to-nearest baseline, packed like GPTQ without act-order."""
    reports: list[LinearReport] = []

    def solve(group: tuple[str, ...], _hessian: None) -> None:
        for name in group:
            linear = layer.get_submodule(name)
            start = time.perf_counter()
            qw = rtn_quantize(linear.weight, bits=config.bits, group_size=config.group_size, sym=config.sym)
            _replace(layer, name, _gptq_module(linear, qw, config.bits, config.group_size))
            reports.append(LinearReport(layer=index, name=name, in_features=linear.in_features,
                                        out_features=linear.out_features, seconds=time.perf_counter() - start))

    outputs = quantize_sequentially(layer, runner, solve, meter, runner.inputs[0].hidden.device, with_hessians=False)
    return StepResult(reports, outputs)


def _collect_hessians(layer: nn.Module, runner: LayerRunner, groups: list[tuple[str, ...]]) -> dict[str, HessianAccumulator]:
    # The Linears of a group read the same input: one Hessian, hooked on the first of them.
    accumulators = {
        group[0]: HessianAccumulator(layer.get_submodule(group[0]).in_features, runner.device) for group in groups
    }

    def hook(name: str, x: torch.Tensor, _y: torch.Tensor) -> None:
        accumulators[name].add_batch(x)

    runner.forward_all(layer, hooks={name: hook for name in accumulators})
    return accumulators


def _solve_group(
    layer: nn.Module, index: int, group: tuple[str, ...], hessian: HessianAccumulator, config: GPTQConfig
) -> list[LinearReport]:
    linears = [layer.get_submodule(name) for name in group]
    start = time.perf_counter()
    # Rows are independent given H: one solve over the stacked weights of the group.
    stacked = torch.cat([linear.weight for linear in linears], dim=0)
    result = gptq_quantize(
        stacked,
        hessian.lower_triangle,  # all the solve reads
        bits=config.bits,
        group_size=config.group_size,
        sym=config.sym,
        desc_act=config.desc_act,
        static_groups=config.static_groups,
        damp_percent=config.damp_percent,
        damp_auto_increment=config.damp_auto_increment,
        block_size=config.block_size,
        overwrite_hessian=True,  # the accumulator is dropped right after
    )
    seconds = (time.perf_counter() - start) / len(group)
    reports = []
    row = 0
    for name, linear in zip(group, linears):
        rows = slice(row, row + linear.out_features)
        row += linear.out_features
        qw = result.weight
        part = QuantizedWeight(qw.codes[rows], qw.scales[:, rows], qw.zeros[:, rows], qw.g_idx, qw.bits, qw.group_size)
        _replace(layer, name, _gptq_module(linear, part, config.bits, config.group_size))
        reports.append(
            LinearReport(
                layer=index,
                name=name,
                in_features=linear.in_features,
                out_features=linear.out_features,
                loss=float(result.row_losses[rows].sum()),
                damp_percent=result.damp_percent,
                dead_channels=result.dead_channels,
                seconds=seconds,
            )
        )
    return reports


def _replace(layer: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(layer.get_submodule(parent), child, module)


def _gptq_module(linear: nn.Linear, qw: QuantizedWeight, bits: int, group_size: int) -> GPTQLinear:
    packed = pack_gptq(qw.codes, qw.zeros, qw.scales, qw.g_idx, bits)
    module = GPTQLinear(
        linear.in_features,
        linear.out_features,
        bits=bits,
        group_size=group_size,
        bias=linear.bias is not None,
        dtype=linear.weight.dtype,
        device=linear.weight.device,
    )
    for name, tensor in packed.items():
        getattr(module, name).copy_(tensor)
    if linear.bias is not None:
        module.bias.copy_(linear.bias.detach())
    module.keep_dequantized(True)  # the layer runs over every sample next; run_layers drops it
    return module
