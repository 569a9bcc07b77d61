"""AWQ for one decoder layer: scale search per smoothing pair, fold, clip search, quantize.

The order is AutoAWQ's ``AwqQuantizer.quantize``: every pair's scales are searched on the
float layer (``search_layer_scales``, data only), folded into the weights
(``apply_layer_scales``), then the clipping ranges are searched on the scaled layer
(``search_layer_clips``) and every Linear is quantized into an ``AWQLinear``. The
pipeline then runs the quantized layer to feed the next one (layerwise.run_layers).

Memory stays bounded by one pair: only that pair's inputs are cached (real tokens, in the
activation dtype, one tensor per sample, on the activations' device); token-wise inspect
modules (MLP, Linear) are evaluated ``chunk_tokens`` tokens at a time, attention one
sample at a time; losses are float64 sums.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
from torch import nn
from torch.func import functional_call

from ..algorithms.awq import (
    AbsMeanAccumulator,
    ClipSearch,
    Evaluate,
    ScaleSearch,
    fold_scales,
    quantize_weight,
    search_clip,
    search_scales,
)
from ..algorithms.gptq import QuantizedWeight
from ..arch import ArchSpec, SmoothingPair
from ..awq_config import AWQConfig
from ..formats.awq import pack_awq
from ..modules.quant_linear import AWQLinear
from ..report import LinearReport
from .capture import move_to
from .layerwise import StepResult
from .runner import ErrorMeter, LayerRunner

logger = logging.getLogger(__name__)

# q/k outputs only matter through the q.k^T product, which a per-Linear output error does not
# see, so AutoAWQ never clips them (_search_best_clip, avoid_clipping "q_", "k_").
NOT_CLIPPED = ("self_attn.q_proj", "self_attn.k_proj")


@dataclass(frozen=True)
class LayerScales:
    """The scale searches of one layer, and the pairs that could not be smoothed."""

    searches: tuple[ScaleSearch, ...]
    skipped: dict[str, str] = field(default_factory=dict)  # consumer Linear -> why


@torch.inference_mode()
def quantize_layer_awq(
    layer: nn.Module, index: int, runner: LayerRunner, meter: ErrorMeter, spec: ArchSpec, config: AWQConfig
) -> StepResult:
    """Replace the layer's Linears with AWQLinear in place (norms and weights rescaled first).

    ``meter.originals`` is set to the scaled, unclipped, unquantized weights: after folding,
    the Linears see x / s, and W * s is what the float model computes on those inputs.
    """
    seconds: dict[str, float] = defaultdict(float)
    start = time.perf_counter()
    scales = search_layer_scales(layer, runner, spec, config)
    folded = apply_layer_scales(layer, scales)
    _spread(seconds, spec.quantized_linears, time.perf_counter() - start)
    # The Linears are quantized from their float32 folded weights: rounding W * s to bf16
    # first would add an error of the order of 8-bit quantization's own.
    weights = {name: folded.get(name, layer.get_submodule(name).weight.detach().float())
               for name in spec.quantized_linears}
    for name, weight in weights.items():
        meter.originals[name] = weight

    clips: dict[str, ClipSearch] = {}
    if config.clip:
        clips = search_layer_clips(layer, runner, spec, config, weights, seconds)

    reports = []
    for name in spec.quantized_linears:
        start = time.perf_counter()
        linear = layer.get_submodule(name)
        clip = clips.get(name)
        qw = quantize_weight(weights[name], bits=config.bits, group_size=config.group_size,
                             zero_point=config.zero_point, max_val=None if clip is None else clip.max_val)
        _set_module(layer, name, awq_module(linear, qw))
        seconds[name] += time.perf_counter() - start
        reports.append(LinearReport(layer=index, name=name, in_features=linear.in_features,
                                    out_features=linear.out_features, seconds=seconds[name],
                                    notes=_notes(name, scales, clip), smoothing=_smoothing(name, scales),
                                    clipped=None if clip is None else clip.shrunk_fraction))
    return StepResult(reports)


# -- scale search --------------------------------------------------------------------------


@torch.inference_mode()
def search_layer_scales(layer: nn.Module, runner: LayerRunner, spec: ArchSpec, config: AWQConfig) -> LayerScales:
    """Search every smoothing pair of ``spec`` on the (float) ``layer``; the layer is not
    modified, so the result can be inspected, cached, or applied later."""
    searches, skipped = [], {}
    for pair in spec.smoothing_pairs:
        reason = unsupported_reason(layer, pair)
        if reason:
            logger.debug("AWQ layer: %s", reason)
            skipped.update({name: reason for name in pair.linears})
            continue
        searches.append(search_pair(layer, runner, pair, config))
    return LayerScales(tuple(searches), skipped)


def unsupported_reason(layer: nn.Module, pair: SmoothingPair) -> str | None:
    """Why a pair cannot be smoothed, or None. A Linear ``prev`` must produce exactly the
    channels its consumers read: v_proj -> o_proj needs as many KV heads as query heads,
    and every Qwen2-VL size uses grouped-query attention (AutoAWQ's qwen2 model checks the
    same shapes before adding this pair)."""
    prev = layer.get_submodule(pair.prev)
    if not isinstance(prev, nn.Linear):
        return None
    reads = layer.get_submodule(pair.linears[0]).in_features
    if prev.out_features == reads:
        return None
    return (f"{pair.prev} -> {', '.join(pair.linears)} smoothing skipped: {pair.prev} has {prev.out_features} "
            f"outputs but {pair.linears[0]} reads {reads} (grouped-query attention: each value head serves "
            f"several query heads, so no per-channel scale can be folded)")


@torch.inference_mode()
def search_pair(layer: nn.Module, runner: LayerRunner, pair: SmoothingPair, config: AWQConfig) -> ScaleSearch:
    """Cache this pair's inputs, then grid-search its scales (algorithms.awq.search_scales)."""
    inputs = collect_inputs(layer, runner, pair.linears[0])
    x_mean = AbsMeanAccumulator(inputs[0].shape[-1], runner.device)
    for chunk in token_chunks(inputs, config.chunk_tokens):
        x_mean.add_batch(chunk.to(runner.device))
    evaluate = pair_evaluator(layer, runner, pair, inputs, config.chunk_tokens)
    weights = [layer.get_submodule(name).weight.detach() for name in pair.linears]
    search = search_scales(x_mean.mean, weights, evaluate, bits=config.bits, group_size=config.group_size,
                           zero_point=config.zero_point, n_grid=config.n_grid, duo_scaling=config.duo_scaling,
                           prev=pair.prev, linears=pair.linears)
    logger.debug("AWQ %s: ratio %.2f (%s), loss %.4g vs %.4g unscaled", pair.prev, search.ratio,
                 "duo" if search.duo else "plain", search.loss, search.unscaled_loss)
    return search


def collect_inputs(layer: nn.Module, runner: LayerRunner, name: str) -> list[torch.Tensor]:
    """The real-token inputs [tokens, K] of Linear ``name``, one tensor per sample, kept on
    the device the layer inputs are stored on; the forward stops right after ``name``."""
    store = runner.inputs[0].hidden.device
    inputs: list[torch.Tensor] = []
    runner.forward_all(layer, hooks={name: lambda _name, x, _y: inputs.append(x.to(store))}, stop_after=name)
    return inputs


def token_chunks(tensors: list[torch.Tensor], chunk_tokens: int) -> Iterator[torch.Tensor]:
    """Consecutive chunks of exactly ``chunk_tokens`` rows (the last may be shorter) taken
    from the concatenation of ``tensors``, without ever concatenating them all."""
    pending: list[torch.Tensor] = []
    count = 0
    for tensor in tensors:
        start = 0
        while start < tensor.shape[0]:
            take = min(chunk_tokens - count, tensor.shape[0] - start)
            pending.append(tensor[start : start + take])
            count += take
            start += take
            if count == chunk_tokens:
                yield pending[0] if len(pending) == 1 else torch.cat(pending)
                pending, count = [], 0
    if pending:
        yield pending[0] if len(pending) == 1 else torch.cat(pending)


def pair_evaluator(layer: nn.Module, runner: LayerRunner, pair: SmoothingPair, inputs: list[torch.Tensor],
                   chunk_tokens: int) -> Evaluate:
    """The callable that scores a candidate: the inspect module's mean squared output error,
    on real tokens, with the pair's Linears swapped for the candidate's fake-quantized
    weights (torch.func.functional_call: the module itself is never modified).

    The float module's outputs are computed once here and cached, in the activation dtype,
    as AutoAWQ caches fp16_output.
    """
    inspect = layer.get_submodule(pair.inspect)
    params = [_param_name(pair.inspect, name) for name in pair.linears]
    dtypes = [layer.get_submodule(name).weight.dtype for name in pair.linears]
    device, store = runner.device, runner.inputs[0].hidden.device
    if pair.mixes_tokens:
        def outputs(overrides: dict[str, torch.Tensor]) -> Iterator[torch.Tensor]:
            yield from _per_sample_outputs(inspect, overrides, runner, inputs)
    else:
        def outputs(overrides: dict[str, torch.Tensor]) -> Iterator[torch.Tensor]:
            for chunk in token_chunks(inputs, chunk_tokens):
                yield functional_call(inspect, overrides, (chunk.to(device),))

    reference = [y.to(store) for y in outputs({})]

    @torch.inference_mode()
    def evaluate(weights: list[torch.Tensor]) -> float:
        overrides = {p: w.to(device, dtype) for p, w, dtype in zip(params, weights, dtypes)}
        total, count = 0.0, 0
        for got, want in zip(outputs(overrides), reference):
            diff = got.float() - want.to(device).float()
            total += float(diff.pow(2).sum(dtype=torch.float64))
            count += diff.numel()
        return total / max(1, count)

    return evaluate


def _per_sample_outputs(module: nn.Module, overrides: dict[str, torch.Tensor], runner: LayerRunner,
                        inputs: list[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Run an attention block on each sample with its own kwargs (M-RoPE position
    embeddings, attention mask, ...); yield the outputs of its real tokens.

    The cache holds real tokens only; padded positions are filled with zeros, which the
    attention mask hides from every real query, and their outputs are dropped.
    """
    device = runner.device
    for sample, x in zip(runner.inputs, inputs):
        mask = sample.token_mask.to(device)
        padded = x.shape[0] != mask.numel()
        if padded:
            full = torch.zeros(*mask.shape, x.shape[-1], dtype=x.dtype, device=device)
            full[mask] = x.to(device)
        else:  # the usual one-sample batch: no scatter/gather copies
            full = x.to(device).reshape(*mask.shape, x.shape[-1])
        kwargs = {"hidden_states": full, **move_to(sample.kwargs, device)}
        out = functional_call(module, overrides, (), kwargs)
        if isinstance(out, tuple):  # attention returns (output, weights)
            out = out[0]
        yield out[mask] if padded else out.reshape(-1, out.shape[-1])


def _param_name(inspect: str, linear: str) -> str:
    """Name of ``linear``'s weight inside the ``inspect`` module (which may be the Linear)."""
    if linear == inspect:
        return "weight"
    if not linear.startswith(inspect + "."):
        raise ValueError(f"{linear} is not inside the inspected module {inspect}")
    return f"{linear[len(inspect) + 1:]}.weight"


@torch.inference_mode()
def apply_layer_scales(layer: nn.Module, scales: LayerScales) -> dict[str, torch.Tensor]:
    """Fold each search's scales into the layer in place (algorithms.awq.fold_scales): divide
    the producing norm's weight or Linear's rows (and bias), multiply the consumers' input
    columns. The layer's float function is unchanged up to the rounding of the weights.

    Returns the folded weight of every Linear touched in float32, before that rounding
    (up_proj is folded twice: its columns as a consumer, its rows as a producer).
    """
    exact: dict[str, torch.Tensor] = {}

    def weight_of(name: str, module: nn.Module) -> torch.Tensor:
        if isinstance(module, nn.Linear):
            return exact.get(name, module.weight.detach().float())
        return module.weight.detach()  # a norm keeps its dtype: it stays in the model as is

    for search in scales.searches:
        prev = layer.get_submodule(search.prev)
        consumers = [layer.get_submodule(name) for name in search.linears]
        prev_bias = getattr(prev, "bias", None)
        folded = fold_scales(weight_of(search.prev, prev), prev_bias,
                             [weight_of(name, c) for name, c in zip(search.linears, consumers)],
                             search.scales.to(prev.weight.device))
        prev.weight.copy_(folded.prev_weight)
        if prev_bias is not None:
            prev_bias.copy_(folded.prev_bias)
        if isinstance(prev, nn.Linear):
            exact[search.prev] = folded.prev_weight
        for name, consumer, weight in zip(search.linears, consumers, folded.weights):
            consumer.weight.copy_(weight)
            exact[name] = weight
    return exact


# -- clipping search -----------------------------------------------------------------------


@torch.inference_mode()
def search_layer_clips(layer: nn.Module, runner: LayerRunner, spec: ArchSpec, config: AWQConfig,
                       weights: dict[str, torch.Tensor] | None = None,
                       seconds: dict[str, float] | None = None) -> dict[str, ClipSearch]:
    """Clipping ranges of the layer's Linears except q/k (AutoAWQ ``_search_best_clip``),
    on the layer as it is now (scales folded), each from a sample of its real input tokens.

    weights: the weights to clip by Linear name (the float32 folded ones); default: the
    layer's own."""
    names = [name for name in spec.quantized_linears if name not in NOT_CLIPPED]
    start = time.perf_counter()
    samples = collect_token_sample(layer, runner, names, config.clip_tokens)
    _spread(seconds, names, time.perf_counter() - start)
    clips = {}
    for name in names:
        start = time.perf_counter()
        weight = (weights or {}).get(name, layer.get_submodule(name).weight)
        clips[name] = search_clip(weight, samples[name].to(weight.device), bits=config.bits,
                                  group_size=config.group_size, zero_point=config.zero_point,
                                  max_shrink=config.max_shrink)
        _spread(seconds, [name], time.perf_counter() - start)
    return clips


def collect_token_sample(layer: nn.Module, runner: LayerRunner, names: list[str],
                         max_tokens: int) -> dict[str, torch.Tensor]:
    """For each Linear, at most ``max_tokens`` of its real input tokens, evenly spaced over
    the whole calibration set (AutoAWQ takes every n-th token), on the compute device."""
    total = sum(int(s.token_mask.sum()) for s in runner.inputs)
    stride = max(1, -(-total // max_tokens))
    seen = dict.fromkeys(names, 0)
    picked: dict[str, list[torch.Tensor]] = {name: [] for name in names}

    def hook(name: str, x: torch.Tensor, _y: torch.Tensor) -> None:
        picked[name].append(x[(-seen[name]) % stride :: stride])
        seen[name] += x.shape[0]

    # The spec lists the Linears in forward order: nothing after the last one needs to run.
    runner.forward_all(layer, hooks=dict.fromkeys(names, hook), stop_after=names[-1])
    return {name: torch.cat(parts)[:max_tokens] for name, parts in picked.items()}


# -- modules and reports -------------------------------------------------------------------


def awq_module(linear: nn.Linear, qw: QuantizedWeight) -> AWQLinear:
    """An AWQLinear holding ``qw`` packed in the AWQ GEMM layout, with the Linear's bias."""
    packed = pack_awq(qw.codes, qw.zeros, qw.scales, qw.bits)
    module = AWQLinear(linear.in_features, linear.out_features, bits=qw.bits, group_size=qw.group_size,
                       bias=linear.bias is not None, dtype=linear.weight.dtype, device=linear.weight.device)
    for name, tensor in packed.items():
        getattr(module, name).copy_(tensor)
    if linear.bias is not None:
        module.bias.copy_(linear.bias.detach())
    module.keep_dequantized(True)  # the layer runs over every sample next; run_layers drops it
    return module


def _set_module(layer: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(layer.get_submodule(parent), child, module)


def _spread(seconds: dict[str, float] | None, names: Sequence[str], elapsed: float) -> None:
    """Attribute ``elapsed`` seconds of shared work evenly to the Linears it served."""
    if seconds is not None:
        for name in names:
            seconds[name] += elapsed / len(names)


def _smoothing(name: str, scales: LayerScales) -> str:
    """Where ``name``'s input scales came from, for the report's table."""
    for search in scales.searches:
        if name in search.linears:
            return f"{search.prev} r={search.ratio:.2f} {'duo' if search.duo else 'plain'}"
    if name in scales.skipped:
        return f"none: {scales.skipped[name]}"
    return "none"


def _notes(name: str, scales: LayerScales, clip: ClipSearch | None) -> str:
    notes = []
    for search in scales.searches:
        if name in search.linears:
            notes.append(f"scales from {search.prev}: ratio {search.ratio:.2f} {'duo' if search.duo else 'plain'}, "
                         f"loss {search.loss:.4g} (unscaled {search.unscaled_loss:.4g})")
        if name == search.prev:
            notes.append(f"output rows divided by the scales of {', '.join(search.linears)}")
    if name in scales.skipped:
        notes.append(scales.skipped[name])
    if clip is not None:
        notes.append(f"clipped {clip.shrunk_fraction:.0%} of groups, error {clip.error:.4g} "
                     f"(unclipped {clip.unclipped_error:.4g})")
    return "; ".join(notes)
