"""AWQ (Lin et al. 2023, arXiv:2306.00978): activation-aware scale search, clipping search,
and the group-wise quantization they prepare for.

Follows AutoAWQ (awq/quantize/quantizer.py): ``_search_best_scale`` /
``_compute_best_scale`` for the scales, ``_compute_best_clip`` for the clipping ranges,
``pseudo_quantize_tensor`` for the grid, and awq/quantize/scale.py ``apply_scale`` for
folding. Searches return data (``ScaleSearch``, ``ClipSearch``); ``fold_scales`` applies a
scale search to weights, and ``quantize_weight`` takes a clip search's ``max_val``. Pure
tensor code: no modules, hooks or devices. How a candidate is evaluated (running attention
or an MLP over calibration tokens) is the pipeline's business, passed in as a callable.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..kernels.cpu_info import cpu_flags
from .gptq import HessianAccumulator
from .weights import QuantizedWeight
from .quantizer import Grid, fit_grid, quantize_codes

# evaluate(fake-quantized weights Q(W*s)/s, one float32 [N_i, K] per Linear of the pair, in
# the pair's order) -> the inspected module's mean squared output error against the float
# module on the calibration tokens.
Evaluate = Callable[[list[torch.Tensor]], float]


@dataclass(frozen=True)
class ScaleCandidate:
    duo: bool  # x_mean^r / w_mean^(1-r) (AutoAWQ duo_scaling) or plain x_mean^r (llm-awq)
    ratio: float
    loss: float


@dataclass(frozen=True)
class ScaleSearch:
    """The chosen smoothing scales of one pair: ``prev`` (norm or Linear) output channels are
    divided by ``scales`` and the input columns of ``linears`` multiplied by them."""

    prev: str
    linears: tuple[str, ...]
    scales: torch.Tensor  # float32 [K]
    ratio: float
    duo: bool
    candidates: tuple[ScaleCandidate, ...]  # every candidate tried, in order

    @property
    def loss(self) -> float:
        return min(c.loss for c in self.candidates)

    @property
    def unscaled_loss(self) -> float:
        """Loss of plain rounding (scales all 1: the plain candidate at ratio 0)."""
        return next(c.loss for c in self.candidates if not c.duo and c.ratio == 0.0)


@dataclass(frozen=True)
class ClipSearch:
    """Clipping range of one Linear: weights of row n, group g are clamped to +-max_val[n, g]."""

    max_val: torch.Tensor  # float32 [N, G]
    # Sums over (row, group) of the mean squared per-group output error over the tokens
    # (AutoAWQ's objective, without the cross-group terms), with the chosen ranges and with
    # none: what clipping gained group by group.
    error: float
    unclipped_error: float
    shrunk_fraction: float  # fraction of (row, group) whose range was shrunk


class AbsMeanAccumulator:
    """Running per-channel mean of |x| over the real tokens seen (AutoAWQ's x_mean).

    Summed in float64 so that hundreds of thousands of tokens add up without drift.
    """

    def __init__(self, channels: int, device: torch.device | str = "cpu") -> None:
        self.sums = torch.zeros(channels, dtype=torch.float64, device=device)
        self.tokens = 0

    def add_batch(self, x: torch.Tensor) -> None:
        """x: [tokens, K], real tokens only."""
        x = x.reshape(-1, x.shape[-1])
        self.sums += x.abs().sum(dim=0, dtype=torch.float64).to(self.sums.device)
        self.tokens += x.shape[0]

    @property
    def mean(self) -> torch.Tensor:
        """float32 [K]."""
        return (self.sums / max(1, self.tokens)).float()


def clip_gram(accumulator: HessianAccumulator, scales: torch.Tensor | None = None) -> torch.Tensor:
    """What ``search_clip`` reads of a Linear's inputs: their mean x^T x over the real
    tokens, float32 [K, K], made from GPTQ's Hessian (2/n sum x x^T) **in place**: the
    accumulator hands its matrix over (``take``; a copy would be 321 MB for a 2B down_proj)
    and is spent. With ``scales`` [K]: the Gram matrix of x / scales, the inputs of the
    folded Linear (entry (i, j) divided by s_i * s_j)."""
    gram = accumulator.take().mul_(0.5)
    if scales is not None:
        s = scales.float().to(gram.device)
        gram.div_(s[:, None]).div_(s[None, :])
    return gram


def weight_mean(weights: Sequence[torch.Tensor], group_size: int) -> torch.Tensor:
    """Per input channel, the mean over all output rows of |W| normalised by its group's max.

    AutoAWQ ``_search_best_scale`` step 1: the weights of the pair's Linears are stacked,
    each group of ``group_size`` input channels is scaled to [0, 1] by its largest |w|, and
    the result is averaged over rows. Returns float32 [K].
    """
    stacked = torch.cat([w.detach().float() for w in weights], dim=0)
    rows, columns = stacked.shape
    grouped = stacked.abs().reshape(-1, group_size)
    normalised = grouped / (grouped.amax(dim=1, keepdim=True) + 1e-6)
    return normalised.reshape(rows, columns).mean(dim=0)


def candidate_scales(x_mean: torch.Tensor, w_mean: torch.Tensor, ratio: float, duo: bool) -> torch.Tensor:
    """One candidate of AutoAWQ ``_compute_best_scale``, normalised by sqrt(max * min).

    duo: x_mean^r / (w_mean^(1-r) + 1e-4); plain: x_mean^r. Both clamped at 1e-4 (a channel
    that never fired must not get a zero scale); inf/nan (overflow) become 1.
    """
    x_mean = x_mean.float()
    if duo:
        scales = (x_mean.pow(ratio) / (w_mean.float().pow(1 - ratio) + 1e-4)).clamp(min=1e-4)
    else:
        scales = x_mean.pow(ratio).clamp(min=1e-4)
    scales = scales / (scales.max() * scales.min()).sqrt()
    return torch.where(torch.isfinite(scales), scales, torch.ones_like(scales))


def search_scales(
    x_mean: torch.Tensor,
    weights: Sequence[torch.Tensor],
    evaluate: Evaluate,
    *,
    bits: int,
    group_size: int,
    zero_point: bool,
    n_grid: int = 20,
    duo_scaling: bool = True,
    prev: str = "",
    linears: tuple[str, ...] = (),
    w_mean: torch.Tensor | None = None,
) -> ScaleSearch:
    """Grid search of the activation exponent (AutoAWQ ``_compute_best_scale``).

    x_mean: float [K], mean |x| of the pair's input per channel; weights: the pair's Linear
    weights [N_i, K] (unscaled), or the rows of them that ``evaluate`` scores. For each
    ratio i / n_grid, i < n_grid, of one kind (AutoAWQ's duo x_mean^r / w_mean^(1-r) when
    ``duo_scaling``, plain x_mean^r otherwise), then the unscaled weights (plain ratio 0)
    when those were not among them, the Linears are fake-quantized as Q(W * s) / s and
    ``evaluate`` measures the inspected module's output error. The lowest loss wins; ties
    keep the earlier candidate. Plain candidates alongside duo ones were tried (issue 13):
    on the 2B shapes, scored on a bounded sample, twice the candidates chose scales that
    fitted the sample and did worse on held-out data (0.1180 against 0.1152) at twice the
    cost. w_mean: ``weight_mean`` of the whole weights, when ``weights`` are only some of
    their rows (default: computed from ``weights``).
    """
    w_mean = weight_mean(weights, group_size) if w_mean is None else w_mean
    grid = [(duo_scaling, i / n_grid) for i in range(n_grid)]
    if duo_scaling:
        grid.append((False, 0.0))  # the unscaled weights: the baseline every search reports
    candidates: list[ScaleCandidate] = []
    best: tuple[float, torch.Tensor, ScaleCandidate] | None = None
    for duo, ratio in grid:
        scales = candidate_scales(x_mean, w_mean, ratio, duo)
        fake = [scaled_fake_quantize(w, scales, bits=bits, group_size=group_size, zero_point=zero_point)
                for w in weights]
        loss = float(evaluate(fake))
        candidate = ScaleCandidate(duo, ratio, loss)
        candidates.append(candidate)
        if math.isfinite(loss) and (best is None or loss < best[0]):
            best = (loss, scales, candidate)
    if best is None:
        raise RuntimeError(f"AWQ scale search for {prev or 'a pair'}: every candidate gave a non-finite loss")
    _, scales, chosen = best
    return ScaleSearch(prev, tuple(linears), scales, chosen.ratio, chosen.duo, tuple(candidates))


def scaled_fake_quantize(weight: torch.Tensor, scales: torch.Tensor, *, bits: int, group_size: int,
                         zero_point: bool) -> torch.Tensor:
    """Q(W * s) / s in float32; W * s is computed in float32, as the pipeline quantizes it.

    The search calls this 40 times per pair on weights of up to 27.5 M values (2B's
    gate/up): it works in place on its one float32 buffer, the same operations in the same
    order as ``fake_quantize``, so the values are identical."""
    scaled = torch.mul(weight.detach(), scales.float()[None, :])  # one float32 buffer
    groups, grid = _group_grid(scaled, bits, group_size, zero_point, None)
    return _fake_quantize_groups_(groups, grid).reshape(weight.shape).div_(scales.float()[None, :])


@dataclass(frozen=True)
class FoldedWeights:
    """What ``fold_scales`` returns: the producer's new weight and bias, the consumers' weights."""

    prev_weight: torch.Tensor
    prev_bias: torch.Tensor | None
    weights: list[torch.Tensor]


def fold_scales(prev_weight: torch.Tensor, prev_bias: torch.Tensor | None, weights: Sequence[torch.Tensor],
                scales: torch.Tensor) -> FoldedWeights:
    """Migrate ``scales`` [K] from the activations into the weights (AutoAWQ ``apply_scale``).

    prev_weight: a norm's weight [K] (scale_ln_fcs) or the producing Linear's weight [K, in]
    whose output rows are divided (scale_fc_fc: up_proj, or v_proj when v -> o applies);
    its bias [K] is divided too. Each consumer weight [N_i, K] has its input columns
    multiplied. The float function is unchanged: x / s @ (W * s)^T = x @ W^T. Computed in
    float32 and rounded once to each tensor's dtype (pass float32 weights to keep them exact).
    """
    s = scales.float()
    if prev_weight.dim() == 1:
        new_prev = prev_weight.float() / s
    else:
        new_prev = prev_weight.float() / s[:, None]
    new_bias = None if prev_bias is None else (prev_bias.float() / s).to(prev_bias.dtype)
    new_weights = [(w.float() * s[None, :]).to(w.dtype) for w in weights]
    return FoldedWeights(new_prev.to(prev_weight.dtype), new_bias, new_weights)


def _group_grid(weight: torch.Tensor, bits: int, group_size: int, zero_point: bool,
                max_val: torch.Tensor | None) -> tuple[torch.Tensor, Grid]:
    """Rows of ``weight`` [N, K] cut into groups -> ([N * G, group] float32, their grids).

    Min/max grid per group (AutoAWQ ``pseudo_quantize_tensor``) from quantizer.fit_grid:
    zero_point -> asymmetric with a zero per group; else symmetric around the middle code.
    max_val [N, G]: clamp each group to +-max_val first (AutoAWQ ``apply_clip``).
    """
    rows, columns = weight.shape
    if columns % group_size:
        raise ValueError(f"group size {group_size} does not divide the input size {columns}")
    groups = weight.detach().float().reshape(-1, group_size)
    if max_val is not None:
        limit = max_val.float().reshape(-1, 1)
        groups = torch.maximum(torch.minimum(groups, limit), -limit)
    # AWQ stores zeros raw, so a zero point of 0 is fine (min_zero=0, unlike GPTQ v1).
    return groups, fit_grid(groups, bits, sym=not zero_point, min_zero=0)


def fake_quantize(weight: torch.Tensor, *, bits: int, group_size: int, zero_point: bool,
                  max_val: torch.Tensor | None = None) -> torch.Tensor:
    """Quantize-dequantize ``weight`` [N, K] group-wise; float32 [N, K]."""
    groups, grid = _group_grid(weight, bits, group_size, zero_point, max_val)
    if groups.data_ptr() == weight.data_ptr():
        groups = groups.clone()  # a float32 weight: never round the caller's tensor in place
    return _fake_quantize_groups_(groups, grid).reshape(weight.shape)


def _fake_quantize_groups_(groups: torch.Tensor, grid: Grid) -> torch.Tensor:
    """dequantize_codes(quantize_codes(groups, grid), grid), computed in place in ``groups``:
    clamp(round(w / scale) + zero, 0, maxq), then (code - zero) * scale."""
    scale, zero = grid.scale[:, None], grid.zero[:, None]
    return groups.div_(scale).round_().add_(zero).clamp_(0, grid.maxq).sub_(zero).mul_(scale)


def quantize_weight(weight: torch.Tensor, *, bits: int, group_size: int, zero_point: bool,
                    max_val: torch.Tensor | None = None) -> QuantizedWeight:
    """Integer codes and per-group grids of ``weight`` [N, K], the same rounding as
    ``fake_quantize``; zeros are the true zero points (2**(bits-1) when symmetric)."""
    rows, columns = weight.shape
    groups, grid = _group_grid(weight, bits, group_size, zero_point, max_val)
    codes = quantize_codes(groups, grid).reshape(rows, columns)
    return QuantizedWeight(
        codes=codes.to(torch.uint8),
        scales=grid.scale.reshape(rows, -1).T.contiguous().to(torch.float16),
        zeros=grid.zero.reshape(rows, -1).T.contiguous().to(torch.int32),
        g_idx=(torch.arange(columns, device=weight.device) // group_size).to(torch.int32),
        bits=bits,
        group_size=group_size,
    )


def search_clip(
    weight: torch.Tensor,
    gram: torch.Tensor,
    *,
    bits: int,
    group_size: int,
    zero_point: bool,
    n_grid: int = 20,
    max_shrink: float = 0.5,
    cross_groups: float = 0.5,
    rows_per_chunk: int = 256,
) -> ClipSearch:
    """Best clipping range per output row and group: AutoAWQ's ``_compute_best_clip``, then
    one pass that also weighs how the groups' errors add up in the row's output.

    weight: [N, K] (already scaled); gram: float32 [K, K], the mean x^T x of the Linear's
    real input tokens (of x / s: ``clip_gram``). Candidates: for i < max_shrink * n_grid the
    range max|w| of each group shrunk by (1 - i / n_grid) (AutoAWQ's 10 ranges, 5 % apart).
    With e the error q - w of a row, the mean squared output error over the tokens is
    e G e^T = sum_g e_g G_gg e_g^T + sum_{g != h} e_g G_gh e_h^T.

    1. AutoAWQ: each (row, group) alone keeps the range with the least e_g G_gg e_g^T (its
       objective, mean over tokens of (x_g . e_g)^2, with the Gram matrix instead of the
       tokens: the same value, a cost that does not depend on the number of tokens).
    2. ``cross_groups`` > 0: one sweep over the groups in order; each (row, group) takes the
       range that minimises the objective with the cross terms weighted by ``cross_groups``,
       the other groups' ranges as chosen so far (coordinate descent: the objective never
       rises). 1 is the row's whole output error; 0 skips the sweep (AutoAWQ). Why 0.5
       (issue 13, README "Against GPTQModel"): on the 2B shapes, every token, the held-out
       error was 0.1124 with AutoAWQ's search, 0.0946 with the whole error and 0.0928 with
       half of the cross terms (0.0933 with bf16 products); on the test model's Int8 the whole error cost 10 % (0.0178
       -> 0.0195), half of it 2 %: the Gram matrix of a calibration set estimates the
       cross terms less well than the groups' own, and weighing them by half hedges.
    Memory: ``rows_per_chunk`` rows at a time, every candidate's error of those rows
    (10 x their float32 weights: 92 MB for 256 rows of a 2B down_proj), and for the sweep a
    bf16 copy of the Gram matrix where bf16 products are fast (160 MB for a 2B down_proj).
    The sweep costs N K^2 multiply-adds (0.7 s for a 2B down_proj on 2 Zen 4 cores in bf16,
    1.6 s in float32), as much as one GPTQ Hessian of N tokens.
    """
    rows, columns = weight.shape
    if columns % group_size:
        raise ValueError(f"group size {group_size} does not divide the input size {columns}")
    groups = columns // group_size
    if gram.shape != (columns, columns):
        raise ValueError(f"gram must be [{columns}, {columns}], got {list(gram.shape)}")
    gram = gram.float()
    blocks = torch.stack([gram[g * group_size:(g + 1) * group_size, g * group_size:(g + 1) * group_size]
                          for g in range(groups)])  # [G, g, g]
    factors = torch.tensor([1 - i / n_grid for i in range(max(1, int(max_shrink * n_grid)))], device=weight.device)
    # The sweep's products in bf16 where that is fast and the sweep long enough to matter:
    # each cross term then carries a relative error of about 0.3 %, which can flip a near
    # tie between two ranges, so small Linears keep float32 (it costs them nothing).
    sweep = cross_groups > 0 and groups > 1
    bf16 = sweep and rows * columns * columns >= BF16_SWEEP_MIN_MACS and _bf16_matmul_is_fast(gram.device.type)
    products = gram.to(torch.bfloat16) if bf16 else gram
    max_vals, error, unclipped_error = [], 0.0, 0.0
    for start in range(0, rows, rows_per_chunk):
        w = weight[start : start + rows_per_chunk].detach().float()
        n = w.shape[0]
        org_max = w.reshape(n, groups, group_size).abs().amax(dim=-1)  # [n, G]
        errors = torch.stack([fake_quantize(w, bits=bits, group_size=group_size, zero_point=zero_point,
                                            max_val=org_max * f) for f in factors.tolist()])
        errors = errors.sub_(w).reshape(len(factors), n, groups, group_size)  # [S, n, G, g]
        by_group = errors.permute(2, 0, 1, 3).reshape(groups, -1, group_size)
        own = (torch.bmm(by_group, blocks) * by_group).sum(-1).reshape(groups, len(factors), n).permute(1, 2, 0)
        choice = own.argmin(dim=0)  # [n, G]; the first minimum: the least shrink among equals
        if sweep:
            _sweep_with_cross_terms(errors, own, choice, products, cross_groups)
        max_vals.append(org_max * factors[choice])
        error += float(own.gather(0, choice[None]).sum(dtype=torch.float64))
        unclipped_error += float(own[0].sum(dtype=torch.float64))
    max_val = torch.cat(max_vals)
    org = weight.detach().float().reshape(rows, groups, group_size).abs().amax(dim=-1)
    return ClipSearch(max_val=max_val, error=error, unclipped_error=unclipped_error,
                      shrunk_fraction=float((max_val < org).float().mean()))


def _sweep_with_cross_terms(errors: torch.Tensor, own: torch.Tensor, choice: torch.Tensor,
                            products: torch.Tensor, weight: float) -> None:
    """Step 2 of ``search_clip`` for one chunk of rows: updates ``choice`` [n, G] in place.

    errors [S, n, G, g]: every candidate's q - w; own [S, n, G]: their e_g G_gg e_g^T;
    products: the Gram matrix G [K, K] in the dtype the products are taken in.
    ``current`` holds each row's error with the ranges chosen so far (the new ones for the
    groups already visited), so for group h, with its own columns zeroed,
    cross = sum_{f != h} e_f G_fh is one product with G's block of columns h; moving a row's
    group h from e_h to e changes the objective by own(e) - own(e_h) + 2 * weight *
    (e - e_h) . cross. N K^2 multiply-adds in all.
    """
    steps, n, groups, group_size = errors.shape
    rows = torch.arange(n, device=errors.device)
    current = errors[choice, rows[:, None], torch.arange(groups, device=errors.device)]  # [n, G, g]
    current = current.reshape(n, -1).to(products.dtype)
    for h in range(groups):
        cols = slice(h * group_size, (h + 1) * group_size)
        current[:, cols] = 0
        cross = (current @ products[cols].T).float()  # [n, g]; G is symmetric: rows h = columns h
        candidates = errors[:, :, h]  # [S, n, g]
        value = own[:, :, h] + (2 * weight) * (candidates * cross).sum(-1)  # [S, n]
        choice[:, h] = value.argmin(dim=0)
        current[:, cols] = candidates[choice[:, h], rows].to(products.dtype)


# search_clip's sweep takes its products in bf16 from this many multiply-adds (N K^2) on: every
# Linear of the 2B and larger shapes (v_proj 0.6 G), none of the hidden-256 test models.
BF16_SWEEP_MIN_MACS = 2**28


@functools.lru_cache(maxsize=None)
def _bf16_matmul_is_fast(device_type: str) -> bool:
    """True on CUDA and on CPUs with bf16 dot products (AVX512-BF16 or AMX): there a bf16
    product is 2.4x a float32 one (AMD EPYC Zen 4, the sweep's [256, 8960] x [8960, 128]);
    elsewhere bf16 is emulated and slower. A property of the machine, not a timing, so the
    same machine always takes the same path (AWQ's output is deterministic)."""
    if device_type == "cuda":
        return True
    return device_type == "cpu" and bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
