"""The layer-by-layer loop shared by every method and by both sources.

capture layer-0 inputs -> for each decoder layer: load it, quantize it (the method's step),
run the quantized layer to get the next layer's inputs and each Linear's output error,
hand the finished layer to the sink. Inputs of layer i+1 are the outputs of the quantized
layer i, so later layers calibrate against the errors of earlier ones.
"""

from __future__ import annotations

import logging
import resource
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from ..calibration.batches import CalibrationSample
from ..modules.quant_linear import QuantLinear
from ..report import LinearReport
from .capture import LayerInputs, capture_first_layer_inputs
from .runner import ErrorMeter, LayerRunner

logger = logging.getLogger(__name__)


@dataclass
class StepResult:
    """What a method's step returns: one report per Linear, and the layer's outputs for the
    next layer if the step computed them on the way (else the pipeline runs the layer)."""

    reports: list[LinearReport]
    outputs: list[torch.Tensor] | None = None


# Tells the progress bar what a step is doing now ("AWQ scales: pair 2/3").
Progress = Callable[[str], None]

# (layer, index, runner, meter, progress) -> StepResult. A step replaces the layer's Linears
# in place. ``meter.originals`` maps each Linear to the float weight its quantized version is
# measured against; a step that rewrites the float model (AWQ folds its scales into norms
# and weights) updates it to the rewritten, still unquantized weights.
LayerStep = Callable[[nn.Module, int, LayerRunner, ErrorMeter, Progress], StepResult]


class LayerSink(Protocol):
    def layer_done(self, index: int, layer: nn.Module, reports: list[LinearReport],
                   next_hidden: list[torch.Tensor]) -> None: ...


def capture_inputs(source, samples: list[CalibrationSample], device: torch.device, store_device: torch.device,
                   show_progress: bool = True) -> list[LayerInputs]:
    front = source.front(device)
    spec = source.spec
    try:
        first = front.get_submodule(spec.layers_path)[0]
        layer_types = set(getattr(source.text_config, "layer_types", None) or ["full_attention"])
        if len(layer_types) > 1:
            # The mask captured at layer 0 would be wrong for layers of the other kind.
            raise NotImplementedError(f"models mixing attention kinds {sorted(layer_types)} are not supported")
        deepstack = None
        if spec.deepstack_kwargs is not None:
            deepstack = (front.get_submodule(spec.text_model), *spec.deepstack_kwargs)
        return capture_first_layer_inputs(front, first, samples, device, store_device, show_progress, deepstack)
    finally:
        source.release_front()


def run_layers(
    source,
    inputs: list[LayerInputs],
    step: LayerStep,
    sink: LayerSink,
    *,
    device: torch.device,
    store_device: torch.device,
    start_layer: int = 0,
    show_progress: bool = True,
) -> list[LinearReport]:
    """Quantize layers ``start_layer..`` of ``source``; returns the reports of those layers."""
    spec = source.spec
    runner = LayerRunner(inputs, device)
    total_tokens = sum(int(s.token_mask.sum()) for s in inputs)
    reports: list[LinearReport] = []
    bar = tqdm(range(start_layer, source.num_layers), desc="quantize", unit="layer", disable=not show_progress,
               initial=0, total=source.num_layers - start_layer)
    def stage(index: int, what: str) -> None:
        bar.set_postfix_str(f"layer {index}: {what}, peak mem {peak_memory(device)}")

    for index in bar:
        started = time.perf_counter()
        stage(index, "load")
        layer = source.layer(index)
        home = next(layer.parameters()).device
        layer.to(device)
        # References, not copies: a replaced Linear's weight stays alive through this dict.
        originals = {name: layer.get_submodule(name).weight.detach() for name in spec.quantized_linears}
        meter = ErrorMeter(layer, originals, total_tokens)
        stage(index, "quantize")
        result = step(layer, index, runner, meter, lambda what, index=index: stage(index, what))
        next_hidden = result.outputs
        if next_hidden is None:
            stage(index, "outputs")
            next_hidden = _run_quantized(layer, runner, meter, store_device)
        layer_reports = result.reports
        for report in layer_reports:
            report.rel_error = meter.rel_error(report.name)
        del originals, meter
        for module in layer.modules():
            if isinstance(module, QuantLinear):
                module.keep_dequantized(False)
        layer.to(home)
        # What the next layer gets (with Qwen3-VL's DeepStack features added after the first
        # layers), saved as the resume state before the layer counts as finished.
        runner.inputs = [s.next(h, index) for h, s in zip(next_hidden, runner.inputs, strict=True)]
        sink.layer_done(index, layer, layer_reports, [s.hidden for s in runner.inputs])
        reports += layer_reports
        worst = max(layer_reports, key=lambda r: r.rel_error)
        logger.info("layer %d done in %.1fs; worst rel. error %.4f (%s)", index,
                    time.perf_counter() - started, worst.rel_error, worst.name)
        stage(index, f"worst err {worst.rel_error:.4f} ({worst.name})")
    bar.close()
    return reports


def peak_memory(device: torch.device) -> str:
    """Peak resident memory of this process so far, plus the GPU's peak allocation."""
    text = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB RAM"  # ru_maxrss is in KiB
    if device.type == "cuda":
        text += f", {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GB GPU"
    return text


def _run_quantized(layer: nn.Module, runner: LayerRunner, meter: ErrorMeter,
                   store_device: torch.device) -> list[torch.Tensor]:
    """Run the quantized layer over every sample, measuring each Linear's error."""
    hooks = {name: lambda name, x, y: meter.add(name, x, y) for name in meter.originals}
    return runner.forward_all(layer, hooks=hooks, keep_outputs=True, store_device=store_device)
