"""AWQ for one decoder layer: scale search per smoothing pair, fold, clip search, quantize.

The order is AutoAWQ's ``AwqQuantizer.quantize``: every pair's scales are searched on the
float layer (``search_layer_scales``, data only), folded into the weights
(``apply_layer_scales``), then the clipping ranges are searched on the scaled weights
(``search_layer_clips``) and every Linear is quantized into an ``AWQLinear``. The pipeline
then runs the quantized layer to feed the next one (layerwise.run_layers).

What it costs (issue 13). One float forward over every calibration sample
(``gather_search_inputs``) collects all the searches read: each pair's mean |x| over every
real token, and a bounded sample of its inputs spread evenly over the calibration set
(``search_tokens`` tokens for the token-wise pairs, whole samples up to that many tokens for
attention; every token where that is cheap, ``search_token_budget``), and for each clipped
Linear's input its K x K Gram matrix over ``clip_tokens`` tokens (GPTQ's
``HessianAccumulator``); the candidates are scored on at most ``search_rows`` output rows
where the spec allows. The 21 candidates of each pair and the clipping search then cost the
same for 16 samples or 1,000 (only the Gram matrix's sums grow, as GPTQ's do). Before,
every candidate ran the inspected module over every calibration token and row, and each
pair and the clip search ran the float layer again to collect their inputs: the cost grew
with the samples, 8x GPTQ's at 65 conversations. Memory is bounded by those samples and
the K x K matrices; losses are float64 sums.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
from torch import nn
from torch.func import functional_call

from ..algorithms.awq import (
    AbsMeanAccumulator,
    ClipSearch,
    clip_gram,
    Evaluate,
    ScaleSearch,
    fold_scales,
    quantize_weight,
    search_clip,
    search_scales,
    weight_mean,
)
from ..algorithms.gptq import HessianAccumulator
from ..arch import ArchSpec, SmoothingPair
from ..config import AWQConfig
from ..modules import replace_module
from ..modules.quant_linear import AWQLinear
from ..report import LinearReport
from .capture import LayerInputs, move_to
from .layerwise import Progress, StepResult
from .runner import ErrorMeter, LayerRunner, StridedSample

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerScales:
    """The scale searches of one layer, and the pairs that could not be smoothed."""

    searches: tuple[ScaleSearch, ...]
    skipped: dict[str, str] = field(default_factory=dict)  # consumer Linear -> why


@dataclass
class PairInputs:
    """What the scale search of one smoothing pair reads (gathered by ``gather_search_inputs``)."""

    x_mean: AbsMeanAccumulator  # mean |x| per channel over every real calibration token
    tokens: StridedSample | None = None  # token-wise pairs: evenly spread real tokens
    samples: dict[int, torch.Tensor] = field(default_factory=dict)  # attention: sample index -> real tokens


@dataclass
class SearchInputs:
    pairs: dict[str, PairInputs]  # by the pair's first Linear
    # The clip statistics, one per input that clipped Linears read, by its reader (the first
    # Linear of the sequential group reading it), and each clipped Linear's reader.
    clip: dict[str, HessianAccumulator]
    clip_reader: dict[str, str]


@torch.inference_mode()
def quantize_layer_awq(
    layer: nn.Module, index: int, runner: LayerRunner, meter: ErrorMeter, spec: ArchSpec, config: AWQConfig,
    progress: Progress = lambda _what: None,
) -> StepResult:
    """Replace the layer's Linears with AWQLinear in place (norms and weights rescaled first).

    ``meter.originals`` is set to the scaled, unclipped, unquantized weights: after folding,
    the Linears see x / s, and W * s is what the float model computes on those inputs.
    """
    seconds: dict[str, float] = defaultdict(float)
    start = time.perf_counter()
    progress("AWQ: gathering inputs")
    gathered = gather_search_inputs(layer, runner, spec, config)
    scales = search_layer_scales(layer, runner, spec, config, gathered, progress)
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
        clips = search_layer_clips(spec, config, weights, clip_inputs(gathered, scales), seconds, progress)

    reports = []
    progress("AWQ: quantizing")
    for name in spec.quantized_linears:
        start = time.perf_counter()
        linear = layer.get_submodule(name)
        clip = clips.get(name)
        qw = quantize_weight(weights[name], bits=config.bits, group_size=config.group_size,
                             zero_point=config.zero_point, max_val=None if clip is None else clip.max_val)
        module = AWQLinear.from_weight(linear, qw)
        module.keep_dequantized(True)  # the layer runs over every sample next; run_layers drops it
        replace_module(layer, name, module)
        seconds[name] += time.perf_counter() - start
        reports.append(LinearReport(layer=index, name=name, in_features=linear.in_features,
                                    out_features=linear.out_features, seconds=seconds[name],
                                    notes=_notes(name, scales, clip), smoothing=_smoothing(name, scales),
                                    clipped=None if clip is None else clip.shrunk_fraction))
    return StepResult(reports)


# -- what the searches read: one float forward ----------------------------------------------


@torch.inference_mode()
def gather_search_inputs(layer: nn.Module, runner: LayerRunner, spec: ArchSpec, config: AWQConfig) -> SearchInputs:
    """Run the float layer once over every sample and keep what every search needs (see the
    module docstring); nothing is kept in proportion to the calibration set."""
    store = runner.inputs[0].hidden.device
    counts = [int(s.token_mask.sum()) for s in runner.inputs]
    total = sum(counts)
    pairs: dict[str, PairInputs] = {}
    chosen: dict[str, set[int]] = {}
    for pair in spec.smoothing_pairs:
        if unsupported_reason(layer, pair) is None:
            budget = search_token_budget(layer, pair, counts, config)
            channels = layer.get_submodule(pair.linears[0]).in_features
            pairs[pair.linears[0]] = PairInputs(AbsMeanAccumulator(channels, runner.device),
                                                None if pair.mixes_tokens else StridedSample(total, budget, store))
            chosen[pair.linears[0]] = set(evenly_spread_samples(counts, budget)) if pair.mixes_tokens else set()
    # Linears of one sequential group read the same input: one sample each, hooked on the first.
    reader = {name: group[0] for group in spec.sequential_groups for name in group}
    clip_reader = {name: reader[name] for name in clipped_linears(spec)} if config.clip else {}
    clip = {first: HessianAccumulator(layer.get_submodule(first).in_features, runner.device)
            for first in clip_reader.values()}
    watched = {reader[name] for name in pairs} | set(clip)
    order = [name for name in spec.quantized_linears if name in watched]
    # Which tokens the clip statistics read: clip_tokens of them, evenly spread (None: all).
    clip_rows = {name: StridedSample(total, config.clip_tokens or total) for name in clip}
    seen = dict.fromkeys(watched, 0)  # samples each hook has seen: the index of the current one

    def hook(name: str, x: torch.Tensor, _y: torch.Tensor) -> None:
        sample_index, seen[name] = seen[name], seen[name] + 1
        pair = pairs.get(name)
        if pair is not None:
            pair.x_mean.add_batch(x)
            if pair.tokens is not None:
                pair.tokens.add(x)
            elif sample_index in chosen[name]:
                pair.samples[sample_index] = x.to(store)
        if name in clip:
            clip[name].add_batch(x[clip_rows[name].rows(x.shape[0])])

    # The spec lists the Linears in forward order: nothing after the last one needs to run.
    runner.forward_all(layer, hooks=dict.fromkeys(order, hook), stop_after=order[-1])
    return SearchInputs(pairs, clip, clip_reader)


# What one forward call costs beyond its multiply-adds (Python, dispatch, small-op overhead),
# in multiply-add equivalents: about 0.5 ms on a 2-core CPU. The attention pair runs one
# forward per sample, so 128 short samples cost far more than their MACs say.
FORWARD_OVERHEAD_MACS = 10_000_000


def search_token_budget(layer: nn.Module, pair: SmoothingPair, counts: Sequence[int], config: AWQConfig) -> int:
    """How many real tokens a pair's candidates are scored on: every token when one
    candidate costs at most ``config.exact_search_macs`` (the Linears of the inspected
    module on every token, plus FORWARD_OVERHEAD_MACS per forward call: one per sample for
    a token-mixing module, one per ``chunk_tokens`` otherwise), else ``config.search_tokens``.
    Only very small models and calibration sets get the exact search."""
    total = sum(counts)
    if config.search_tokens is None:
        return total
    inspect = layer.get_submodule(pair.inspect)
    modules = [inspect] if isinstance(inspect, nn.Linear) else list(inspect.modules())
    per_token = sum(m.in_features * m.out_features for m in modules if isinstance(m, nn.Linear))
    forwards = len(counts) if pair.mixes_tokens else -(-total // config.chunk_tokens)
    cost = total * per_token + forwards * FORWARD_OVERHEAD_MACS
    return total if cost <= config.exact_search_macs else min(total, config.search_tokens)


def evenly_spread_samples(token_counts: Sequence[int], budget: int) -> list[int]:
    """Indices of samples spread evenly over the list whose tokens add up to at most
    ``budget`` (at least one sample): what a token-mixing module is evaluated on."""
    total = sum(token_counts)
    if total <= budget:
        return list(range(len(token_counts)))
    step = total / budget
    chosen, used = [], 0
    position = 0.0
    while position < len(token_counts):
        i = int(position)
        if not chosen or used + token_counts[i] <= budget:
            if i not in chosen:
                chosen.append(i)
                used += token_counts[i]
        position += max(1.0, step)
    return chosen


def clipped_linears(spec: ArchSpec) -> list[str]:
    return [name for name in spec.quantized_linears if name not in spec.not_clipped]


# -- scale search --------------------------------------------------------------------------


@torch.inference_mode()
def search_layer_scales(layer: nn.Module, runner: LayerRunner, spec: ArchSpec, config: AWQConfig,
                        gathered: SearchInputs | None = None, progress: Progress = lambda _what: None) -> LayerScales:
    """Search every smoothing pair of ``spec`` on the (float) ``layer``; the layer is not
    modified, so the result can be inspected, cached, or applied later."""
    gathered = gathered or gather_search_inputs(layer, runner, spec, config)
    searches, skipped = [], {}
    supported = [pair for pair in spec.smoothing_pairs if pair.linears[0] in gathered.pairs]
    for pair in spec.smoothing_pairs:
        reason = unsupported_reason(layer, pair)
        if reason:
            logger.debug("AWQ layer: %s", reason)
            skipped.update({name: reason for name in pair.linears})
            continue
        progress(f"AWQ scales: pair {supported.index(pair) + 1}/{len(supported)}")
        searches.append(search_pair(layer, runner, pair, config, gathered.pairs[pair.linears[0]]))
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
def search_pair(layer: nn.Module, runner: LayerRunner, pair: SmoothingPair, config: AWQConfig,
                gathered: PairInputs) -> ScaleSearch:
    """Grid-search one pair's scales (algorithms.awq.search_scales) on its gathered inputs.

    Where the spec allows (``SmoothingPair.row_subset``), candidates are scored on at most
    ``config.search_rows`` evenly spaced output rows of the pair's Linears: their
    fake-quantization and the inspected module shrink with them (2B's gate/up: 8960 rows),
    while the scale formula still reads the weights' statistics over every row."""
    linears = [layer.get_submodule(name) for name in pair.linears]
    weights = [linear.weight.detach() for linear in linears]
    rows = row_subset(weights[0].shape[0], config.search_rows) if pair.row_subset else None
    scored = weights if rows is None else [w[rows] for w in weights]
    fixed: dict[str, torch.Tensor] = {}
    if rows is not None:
        for name, linear in zip(pair.linears, linears):
            if linear.bias is not None:
                fixed[_param_name(pair.inspect, name, "bias")] = linear.bias.detach()[rows]
        if pair.rows_read_by is not None:
            reader = layer.get_submodule(pair.rows_read_by).weight.detach()
            fixed[_param_name(pair.inspect, pair.rows_read_by)] = reader[:, rows]
    if pair.mixes_tokens:
        outputs = attention_outputs(layer, runner, pair, gathered.samples)
    else:
        outputs = token_wise_outputs(layer, runner, pair, gathered.tokens.tensor(), config.chunk_tokens)
    evaluate = _evaluator(layer, pair, outputs, runner.device, fixed, scored)
    search = search_scales(gathered.x_mean.mean, scored, evaluate, bits=config.bits, group_size=config.group_size,
                           zero_point=config.zero_point, n_grid=config.n_grid, duo_scaling=config.duo_scaling,
                           prev=pair.prev, linears=pair.linears, w_mean=weight_mean(weights, config.group_size))
    logger.debug("AWQ %s: ratio %.2f (%s), loss %.4g vs %.4g unscaled", pair.prev, search.ratio,
                 "duo" if search.duo else "plain", search.loss, search.unscaled_loss)
    return search


def row_subset(rows: int, budget: int | None) -> torch.Tensor | None:
    """At most ``budget`` evenly spaced row indices out of ``rows``; None for all of them."""
    if budget is None or rows <= budget:
        return None
    return torch.arange(rows)[:: -(-rows // budget)]


Outputs = Callable[[dict[str, torch.Tensor]], Iterator[torch.Tensor]]


def _evaluator(layer: nn.Module, pair: SmoothingPair, outputs: Outputs, device: torch.device,
               fixed: dict[str, torch.Tensor], scored: list[torch.Tensor]) -> Evaluate:
    """The callable that scores a candidate: the inspect module's mean squared output error
    on the gathered real tokens, with the pair's (scored rows of the) Linears swapped for the
    candidate's fake-quantized weights (torch.func.functional_call: the module is never
    modified). ``fixed``: parameters narrowed to the scored rows (biases, the reader).

    The float outputs are computed once here and cached, in the activation dtype, as
    AutoAWQ caches fp16_output.
    """
    params = [_param_name(pair.inspect, name) for name in pair.linears]
    dtypes = [w.dtype for w in scored]
    fixed = {k: v.to(device) for k, v in fixed.items()}
    reference = [y.clone() for y in outputs({**fixed, **{p: w.to(device) for p, w in zip(params, scored)}})]

    @torch.inference_mode()
    def evaluate(weights: list[torch.Tensor]) -> float:
        overrides = {**fixed, **{p: w.to(device, dtype) for p, w, dtype in zip(params, weights, dtypes)}}
        total, count = 0.0, 0
        for got, want in zip(outputs(overrides), reference):
            diff = got.float() - want.float()
            total += float(diff.pow(2).sum(dtype=torch.float64))
            count += diff.numel()
        return total / max(1, count)

    return evaluate


def token_wise_outputs(layer: nn.Module, runner: LayerRunner, pair: SmoothingPair, tokens: torch.Tensor,
                       chunk_tokens: int) -> Outputs:
    """Outputs of a pair's token-wise inspect module (MLP, Linear) on the gathered tokens."""
    inspect, device = layer.get_submodule(pair.inspect), runner.device

    def outputs(overrides: dict[str, torch.Tensor]) -> Iterator[torch.Tensor]:
        for start in range(0, tokens.shape[0], chunk_tokens):
            yield functional_call(inspect, overrides, (tokens[start : start + chunk_tokens].to(device),))

    return outputs


def attention_outputs(layer: nn.Module, runner: LayerRunner, pair: SmoothingPair,
                      samples: dict[int, torch.Tensor]) -> Outputs:
    """Outputs of a pair's token-mixing inspect module (attention) on whole samples, each
    with its own keyword arguments (M-RoPE position embeddings, mask, ...)."""
    inspect, device = layer.get_submodule(pair.inspect), runner.device

    def outputs(overrides: dict[str, torch.Tensor]) -> Iterator[torch.Tensor]:
        for index, x in samples.items():
            yield sample_output(inspect, overrides, runner.inputs[index], x, device)

    return outputs


def sample_output(module: nn.Module, overrides: dict[str, torch.Tensor], sample: LayerInputs, x: torch.Tensor,
                  device: torch.device) -> torch.Tensor:
    """Run an attention block on one sample's real-token inputs ``x`` with its kwargs; return
    the outputs of its real tokens.

    Padded positions are filled with zeros, which the attention mask hides from every real
    query, and their outputs are dropped.
    """
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
    return out[mask] if padded else out.reshape(-1, out.shape[-1])


def _param_name(inspect: str, linear: str, param: str = "weight") -> str:
    """Name of ``linear``'s weight (or bias) inside the ``inspect`` module (which may be the Linear)."""
    if linear == inspect:
        return param
    if not linear.startswith(inspect + "."):
        raise ValueError(f"{linear} is not inside the inspected module {inspect}")
    return f"{linear[len(inspect) + 1:]}.{param}"


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


def clip_inputs(gathered: SearchInputs, scales: LayerScales) -> dict[str, torch.Tensor]:
    """Each clipped Linear's input Gram matrix (``clip_gram``) as the folded layer feeds it:
    of x / s, with s the scales of the pair that consumes that input (one vector for all the
    Linears reading it). One matrix per input, made from its accumulator, which is spent."""
    divisor = {name: search.scales for search in scales.searches for name in search.linears}
    folded_by: dict[str, torch.Tensor | None] = {}
    for name, first in gathered.clip_reader.items():
        folded_by.setdefault(first, divisor.get(name))
    grams = {first: clip_gram(gathered.clip[first], s) for first, s in folded_by.items()}
    return {name: grams[first] for name, first in gathered.clip_reader.items()}


@torch.inference_mode()
def search_layer_clips(spec: ArchSpec, config: AWQConfig, weights: dict[str, torch.Tensor],
                       inputs: dict[str, torch.Tensor], seconds: dict[str, float] | None = None,
                       progress: Progress = lambda _what: None) -> dict[str, ClipSearch]:
    """Clipping ranges of the layer's Linears except q/k (AutoAWQ ``_search_best_clip``), for
    the folded float32 ``weights``, each on its inputs' Gram matrix (``clip_inputs``)."""
    names = clipped_linears(spec)
    clips = {}
    for i, name in enumerate(names):
        progress(f"AWQ clip: linear {i + 1}/{len(names)}")
        start = time.perf_counter()
        weight = weights[name]
        clips[name] = search_clip(weight, inputs[name].to(weight.device), bits=config.bits,
                                  group_size=config.group_size, zero_point=config.zero_point,
                                  max_shrink=config.max_shrink, cross_groups=config.clip_cross_groups)
        _spread(seconds, [name], time.perf_counter() - start)
    return clips


# -- reports ---------------------------------------------------------------------------------


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
        notes.append(f"clipped {clip.shrunk_fraction:.0%} of groups, per-group error {clip.error:.4g} "
                     f"(unclipped {clip.unclipped_error:.4g})")
    return "; ".join(notes)
