"""AWQ options: a frozen dataclass validated on construction, like ``config.GPTQConfig``.

The field names are ours (bits, group_size as in GPTQConfig and transformers' AwqConfig);
``AWQConfig.from_dict`` also takes AutoAWQ's ``quant_config`` dict exactly as users write
it for AutoAWQ (the Qwen2-VL README recipe):
``{"zero_point": True, "q_group_size": 128, "w_bit": 4, "version": "GEMM"}``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import ConfigError

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
    duo_scaling: also try AutoAWQ's "duo" candidates x_mean^r / w_mean^(1-r) besides the
        plain x_mean^r of llm-awq, and keep whichever loses least; False: plain only.
    clip: search a clipping range per output channel and group (AutoAWQ apply_clip).
    max_shrink: the clipping search shrinks the range by up to this fraction.
    clip_tokens: the clipping error is measured on at most this many real tokens.
    search_tokens: each scale candidate is scored on at most this many real tokens, spread
        evenly over the calibration set (attention: whole samples up to this many tokens);
        the activation statistics still cover every token. None scores on every token,
        which costs in proportion to the calibration set.
    search_rows: where the model spec allows it (not attention), a candidate is scored on
        at most this many evenly spaced output rows of the pair's Linears; the scale
        formula still reads every row. None scores every row.
    exact_search_macs: a pair whose candidate costs at most this many multiply-adds on
        every calibration token (the Linears of the inspected module) is scored on every
        token, whatever ``search_tokens`` says: small models get the exact search.
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
    clip_tokens: int = 512
    search_tokens: int | None = 1024
    search_rows: int | None = 512
    exact_search_macs: int = 4_000_000_000
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
            if name in ("search_tokens", "search_rows") and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
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
