"""Quantization configs: frozen dataclasses, validated when they are built.

The field names follow AutoGPTQ's ``BaseQuantizeConfig`` (bits, group_size, damp_percent,
desc_act, static_groups, sym, true_sequential), as in the Qwen2-VL README recipe, so a
user can pass the same names and values and get the same meaning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import ConfigError

SUPPORTED_BITS = (4, 8)
SUPPORTED_GROUP_SIZES = (-1, 32, 64, 128)


@dataclass(frozen=True)
class GPTQConfig:
    """GPTQ (Frantar et al. 2022, arXiv:2210.17323) options.

    bits: 4 or 8.
    group_size: input channels per scale/zero group; -1 means one group per output row.
    sym: symmetric grid (zero fixed at the middle code); False fits a zero per group.
    desc_act: act-order, quantize columns in order of decreasing Hessian diagonal.
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
    """

    bits: int = 4
    group_size: int = 128
    sym: bool = True
    desc_act: bool = False
    static_groups: bool = True
    damp_percent: float = 0.01
    damp_auto_increment: float = 0.0025
    block_size: int = 128
    true_sequential: bool = True

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


@dataclass(frozen=True)
class CalibrationConfig:
    """How calibration conversations become model inputs.

    num_samples: use at most this many samples (None: all), chosen with ``seed``.
    min_pixels/max_pixels: bound the pixels, hence visual tokens, per image (each visual
        token covers 28x28 pixels after the 2x2 merge); None keeps the processor's setting.
    max_length: samples longer than this many tokens are skipped, never cut mid-image.
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
