"""Quantization and calibration configs: frozen dataclasses, validated when they are built.
Every default lives here; the command line reads its defaults from these classes.

GPTQ's field names follow AutoGPTQ's ``BaseQuantizeConfig`` (bits, group_size,
damp_percent, desc_act, static_groups, sym, true_sequential), as in the Qwen2-VL README
recipe, so a user can pass the same names and values and get the same meaning.
``AWQConfig.from_dict`` takes AutoAWQ's ``quant_config`` dict exactly as users write it for
AutoAWQ (the Qwen2-VL README recipe):
``{"zero_point": True, "q_group_size": 128, "w_bit": 4, "version": "GEMM"}``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import ConfigError

SUPPORTED_BITS = (4, 8)
SUPPORTED_GROUP_SIZES = (-1, 32, 64, 128)
# The largest safetensors shard written (the CLI's --max-shard-size, the API's max_shard_size).
DEFAULT_MAX_SHARD_SIZE = "4GB"


@dataclass(frozen=True)
class GPTQConfig:
    """GPTQ (Frantar et al. 2022, arXiv:2210.17323) options.

    bits: 4 or 8.
    group_size: input channels per scale/zero group; -1 means one group per output row.
    sym: symmetric grid (zero fixed at the middle code); False fits a zero per group.
    desc_act: act-order, quantize columns in order of decreasing Hessian diagonal (the
        default: with static groups it lowered the output error on every test model,
        benchmarks/results/act_order_error.md, and vLLM serves it).
    static_groups: with desc_act, fix the group grids before reordering so that the
        groups stay contiguous in the original channel order: g_idx stays trivial and the
        checkpoint says desc_act false, which vLLM serves (it refuses dynamic act-order).
        False: AutoGPTQ's dynamic act-order, groups follow the permutation; transformers
        (gptqmodel) loads it, vLLM does not. Unlike AutoGPTQ, True is the default.
    damp_percent: dampening added to the Hessian diagonal, as a fraction of its mean.
    damp_auto_increment: added to damp_percent and retried while the damped Hessian is not
        positive definite (GPTQModel does the same).
    block_size: columns updated together in the lazy-batch GPTQ solve.
    true_sequential: quantize q/k/v, then o, then gate/up, then down, each group seeing the
        inputs produced by the already-quantized earlier groups.
    strict: a group whose Hessian stays indefinite after every damping retry is an error;
        by default it is rounded to nearest instead, with a warning and a mark in the report.
    """

    bits: int = 4
    group_size: int = 128
    sym: bool = True
    desc_act: bool = True
    static_groups: bool = True
    damp_percent: float = 0.01
    damp_auto_increment: float = 0.0025
    block_size: int = 128
    true_sequential: bool = True
    strict: bool = False

    method = "gptq"

    def __post_init__(self) -> None:
        _check_bits_and_group(self.bits, self.group_size)
        if not 0.0 < self.damp_percent < 1.0:
            raise ConfigError(f"damp_percent must be in (0, 1), got {self.damp_percent}")
        if not 0.0 <= self.damp_auto_increment < 1.0:
            raise ConfigError(f"damp_auto_increment must be in [0, 1), got {self.damp_auto_increment}")
        if self.block_size < 1:
            raise ConfigError(f"block_size must be positive, got {self.block_size}")

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> "GPTQConfig":
        """Build from AutoGPTQ / GPTQModel-style keys; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        aliases = {"blocksize": "block_size", "percdamp": "damp_percent", "wbits": "bits"}
        ignored = {"quant_method", "checkpoint_format", "model_name_or_path", "model_file_base_name"}
        kwargs: dict[str, Any] = {}
        for key, value in options.items():
            name = aliases.get(key, key)
            if name in ignored:
                continue
            if name not in known:
                raise ConfigError(f"unknown GPTQ option {key!r}; known: {', '.join(sorted(known))}")
            kwargs[name] = value
        return cls(**kwargs)


@dataclass(frozen=True)
class RTNConfig:
    """Round-to-nearest, no calibration of the weights: the baseline in every comparison.

    Written in the GPTQ checkpoint format (no act-order), so it loads wherever GPTQ does.
    """

    bits: int = 4
    group_size: int = 128
    sym: bool = True

    method = "rtn"

    def __post_init__(self) -> None:
        _check_bits_and_group(self.bits, self.group_size)


def _check_bits_and_group(bits: int, group_size: int) -> None:
    if bits not in SUPPORTED_BITS:
        raise ConfigError(f"bits must be one of {SUPPORTED_BITS}, got {bits}")
    if group_size not in SUPPORTED_GROUP_SIZES:
        raise ConfigError(f"group_size must be one of {SUPPORTED_GROUP_SIZES}, got {group_size}")


AWQ_BITS = (4, 8)
# The AWQ GEMM layout stores one scale row per group of input channels: no "-1" here.
AWQ_GROUP_SIZES = (32, 64, 128)


@dataclass(frozen=True)
class AWQConfig:
    """AWQ (Lin et al. 2023, arXiv:2306.00978) options, defaults as in AutoAWQ.

    bits: 4 or 8.
    group_size: input channels per scale/zero group (32, 64 or 128).
    zero_point: asymmetric min/max grid with a zero per group; False: symmetric grid whose
        zero is the middle code 2**(bits-1), stored explicitly.
    n_grid: exponents tried in the scale search, ratio = i / n_grid for i < n_grid.
    duo_scaling: AutoAWQ's "duo" candidates x_mean^r / w_mean^(1-r) (the unscaled weights
        are scored too); False: llm-awq's plain x_mean^r.
    clip: search a clipping range per output channel and group (AutoAWQ apply_clip).
    max_shrink: the clipping search shrinks the range by up to this fraction.
    clip_tokens: the clipping search's Gram matrix (``search_clip``) sums at most this many
        real tokens, evenly spread; None (the default): every token, as GPTQ's Hessian
        does (issue 13, 2B shapes: held-out error 0.0928 against 0.0996 with AutoAWQ's
        512, which the cross-group terms fit too closely).
    clip_cross_groups: how much the clipping search weighs the products of different
        groups' errors in a row's output (``search_clip``): 0 is AutoAWQ's search, each
        group alone; 1 the row's whole output error; 0.5, the default, halfway (issue 13:
        held-out error on the 2B shapes 0.0928 against 0.1152 with AutoAWQ's search and
        GPTQModel's 0.1122).
    search_tokens: each scale candidate is scored on at most this many real tokens, spread
        evenly over the calibration set (attention: whole samples up to this many tokens);
        the activation statistics still cover every token. None scores on every token,
        which costs in proportion to the calibration set.
    search_rows: where the model spec allows it (not attention), a candidate is scored on
        at most this many evenly spaced output rows of the pair's Linears; the scale
        formula still reads every row. None scores every row.
    exact_search_macs: a pair whose candidate costs at most this many multiply-adds on
        every calibration token (the Linears of the inspected module, plus an overhead per
        forward call) is scored on every token, whatever ``search_tokens`` says: only very
        small models and calibration sets get the exact search (21 candidates then cost
        about as much as GPTQ's solve of the layer).
    chunk_tokens: token-wise modules (MLP, Linear) are evaluated this many tokens at a time,
        so that memory stays bounded.
    """

    bits: int = 4
    group_size: int = 128
    zero_point: bool = True
    n_grid: int = 20
    duo_scaling: bool = True
    clip: bool = True
    max_shrink: float = 0.5
    clip_tokens: int | None = None
    clip_cross_groups: float = 0.5
    search_tokens: int | None = 1024
    search_rows: int | None = 512
    exact_search_macs: int = 250_000_000
    chunk_tokens: int = 4096

    method = "awq"

    def __post_init__(self) -> None:
        if self.bits not in AWQ_BITS:
            raise ConfigError(f"AWQ bits must be one of {AWQ_BITS}, got {self.bits}")
        if self.group_size not in AWQ_GROUP_SIZES:
            raise ConfigError(f"AWQ group_size must be one of {AWQ_GROUP_SIZES}, got {self.group_size}")
        for name in ("zero_point", "duo_scaling", "clip"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.exact_search_macs, bool) or not isinstance(self.exact_search_macs, int) \
                or self.exact_search_macs < 0:
            raise ConfigError(f"exact_search_macs must be a non-negative integer, got {self.exact_search_macs!r}")
        for name in ("n_grid", "clip_tokens", "chunk_tokens", "search_tokens", "search_rows"):
            value = getattr(self, name)
            if name in ("clip_tokens", "search_tokens", "search_rows") and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.clip_cross_groups, bool) or not isinstance(self.clip_cross_groups, (int, float)) \
                or not 0.0 <= self.clip_cross_groups <= 1.0:
            raise ConfigError(f"clip_cross_groups must be a number in [0, 1], got {self.clip_cross_groups!r}")
        if not 0.0 <= self.max_shrink < 1.0:
            raise ConfigError(f"max_shrink must be in [0, 1), got {self.max_shrink}")

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> "AWQConfig":
        """Build from our field names or AutoAWQ's quant_config keys; unknown keys are an error.

        ``version`` must be GEMM (any case), the only layout we write; ``quant_method``,
        if present, must be "awq".
        """
        known = {f.name for f in dataclasses.fields(cls)}
        aliases = {"w_bit": "bits", "q_group_size": "group_size", "apply_clip": "clip"}
        kwargs: dict[str, Any] = {}
        for key, value in options.items():
            if key == "version":
                if not isinstance(value, str) or value.lower() != "gemm":
                    raise ConfigError(f"AWQ version {value!r} is not supported; only GEMM is written")
                continue
            if key == "quant_method":
                if str(value).lower() != "awq":
                    raise ConfigError(f"quant_method {value!r} given to an AWQ config")
                continue
            name = aliases.get(key, key)
            if name not in known:
                raise ConfigError(f"unknown AWQ option {key!r}; known: {', '.join(sorted(known | set(aliases)))}")
            if name in kwargs:
                raise ConfigError(f"AWQ option {name!r} given twice (as {key!r})")
            kwargs[name] = value
        return cls(**kwargs)


QuantConfig = GPTQConfig | RTNConfig | AWQConfig


@dataclass(frozen=True)
class CalibrationConfig:
    """How calibration conversations become model inputs (calibration/batches.py).

    num_samples: use at most this many samples (None: all), chosen with ``seed``; in file
        order unless ``shuffle``.
    min_pixels/max_pixels: bound the pixels, hence visual tokens, per image (each visual
        token covers 28x28 pixels after the 2x2 merge); None keeps the processor's setting.
    max_length: a longer sample is cut at a message boundary after its last image or video
        (when ``truncate_long_samples``), or else skipped and counted; never cut mid-image.
    max_frames/fps: frames sampled per video file, and their rate.
    max_visual_tokens: visual tokens per sample; its media are downscaled to fit, or the
        sample is skipped and counted.
    skip_bad_samples: a missing or corrupt file is a counted skip, not an error.
    """

    num_samples: int | None = 128
    seed: int = 0
    min_pixels: int | None = None
    max_pixels: int | None = 512 * 28 * 28
    max_length: int = 4096
    shuffle: bool = False
    max_frames: int = 16
    fps: float = 2.0
    max_visual_tokens: int | None = 2048
    truncate_long_samples: bool = True
    skip_bad_samples: bool = False

    def __post_init__(self) -> None:
        if self.num_samples is not None and self.num_samples < 1:
            raise ConfigError(f"num_samples must be at least 1, got {self.num_samples}")
        for name in ("min_pixels", "max_pixels"):
            value = getattr(self, name)
            if value is not None and value < 28 * 28:
                raise ConfigError(f"{name} must be at least 784 (one 28x28 visual token), got {value}")
        if self.min_pixels and self.max_pixels and self.min_pixels > self.max_pixels:
            raise ConfigError(f"min_pixels ({self.min_pixels}) exceeds max_pixels ({self.max_pixels})")
        if self.max_frames < 2:
            raise ConfigError(f"max_frames must be at least 2 (Qwen2-VL merges frame pairs), got {self.max_frames}")
        if self.fps <= 0:
            raise ConfigError(f"fps must be positive, got {self.fps}")
        if self.max_length < 8:
            raise ConfigError(f"max_length must be at least 8 tokens, got {self.max_length}")
