"""GPTQ for one decoder layer: collect Hessians group by group, solve, swap in GPTQLinear.

True-sequential order (q/k/v, then o, then gate/up, then down): each group's Hessian is
collected with the earlier groups already quantized, so it sees the inputs the quantized
model will really produce (AutoGPTQ ``true_sequential``); pipeline/sequential.py walks the
layer so that this costs one forward pass, not four.

A group whose Hessian stays indefinite after every damping retry (too few calibration
tokens for a wide Linear, late in a long run) falls back to round to nearest, with a
warning and a mark in the report, as llm-compressor does, instead of throwing away the
hours spent on the layers before it; ``GPTQConfig.strict`` makes it an error instead.
"""

from __future__ import annotations

import logging
import time

import torch
from torch import nn

from ..algorithms.gptq import HessianAccumulator, HessianNotPositiveDefinite, gptq_quantize
from ..algorithms.rtn import rtn_quantize
from ..algorithms.weights import QuantizedWeight
from ..arch import ArchSpec
from ..config import GPTQConfig, RTNConfig
from ..errors import QuantError
from ..modules import replace_module
from ..modules.quant_linear import GPTQLinear
from ..report import LinearReport
from .layerwise import StepResult
from .runner import ErrorMeter, LayerRunner
from .sequential import quantize_sequentially

logger = logging.getLogger(__name__)


class GPTQFailed(QuantError):
    """GPTQ could not solve a group in strict mode."""


def quantize_layer_gptq(
    layer: nn.Module, index: int, runner: LayerRunner, meter: ErrorMeter, spec: ArchSpec, config: GPTQConfig
) -> StepResult:
    """Replace the layer's Linears with GPTQLinear in place; one report per Linear."""
    reports: list[LinearReport] = []

    def solve(group: tuple[str, ...], hessian: HessianAccumulator) -> None:
        reports.extend(_solve_group(layer, index, group, hessian, config))

    def new_hessian(columns: int) -> HessianAccumulator:
        return HessianAccumulator(columns, runner.device)

    if config.true_sequential:
        outputs = quantize_sequentially(layer, runner, spec, solve, meter, runner.inputs[0].hidden.device, new_hessian)
        return StepResult(reports, outputs)
    # All Hessians from the float layer in one pass, then solve every group.
    hessians = _collect_hessians(layer, runner, spec.sequential_groups)
    for group in spec.sequential_groups:
        solve(group, hessians[group[0]])
    return StepResult(reports)


def quantize_layer_rtn(
    layer: nn.Module, index: int, runner: LayerRunner, meter: ErrorMeter, spec: ArchSpec, config: RTNConfig
) -> StepResult:
    """Round-to-nearest baseline, packed like GPTQ without act-order."""
    reports: list[LinearReport] = []

    def solve(group: tuple[str, ...], _statistics: None) -> None:
        for name in group:
            linear = layer.get_submodule(name)
            start = time.perf_counter()
            qw = rtn_quantize(linear.weight, bits=config.bits, group_size=config.group_size, sym=config.sym)
            _replace(layer, name, linear, qw)
            reports.append(LinearReport(layer=index, name=name, in_features=linear.in_features,
                                        out_features=linear.out_features, seconds=time.perf_counter() - start))

    outputs = quantize_sequentially(layer, runner, spec, solve, meter, runner.inputs[0].hidden.device)
    return StepResult(reports, outputs)


def _collect_hessians(layer: nn.Module, runner: LayerRunner,
                      groups: tuple[tuple[str, ...], ...]) -> dict[str, HessianAccumulator]:
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
    try:
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
    except HessianNotPositiveDefinite as exc:
        if config.strict:
            raise GPTQFailed(f"layer {index} {', '.join(group)}: {exc}") from exc
        logger.warning("layer %d %s: %s; rounding to nearest instead", index, ", ".join(group), exc)
        return _round_group(layer, index, group, config, f"round to nearest: {exc}")
    seconds = (time.perf_counter() - start) / len(group)
    reports = []
    row = 0
    for name, linear in zip(group, linears):
        rows = slice(row, row + linear.out_features)
        row += linear.out_features
        _replace(layer, name, linear, result.weight.rows(rows))
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


def _round_group(layer: nn.Module, index: int, group: tuple[str, ...], config: GPTQConfig,
                 why: str) -> list[LinearReport]:
    """The fallback of a group GPTQ could not solve: round to nearest, in the same format."""
    reports = []
    for name in group:
        linear = layer.get_submodule(name)
        qw = rtn_quantize(linear.weight, bits=config.bits, group_size=config.group_size, sym=config.sym)
        _replace(layer, name, linear, qw)
        reports.append(LinearReport(layer=index, name=name, in_features=linear.in_features,
                                    out_features=linear.out_features, fallback=why))
    return reports


def _replace(layer: nn.Module, name: str, linear: nn.Linear, qw: QuantizedWeight) -> None:
    module = GPTQLinear.from_weight(linear, qw)
    module.keep_dequantized(True)  # the layer runs over every sample next; run_layers drops it
    replace_module(layer, name, module)
