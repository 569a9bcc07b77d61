"""The one place that knows the shape of Qwen2-VL: a small typed spec, not isinstance chains.

Module names are those of transformers 5.x (``model.language_model.layers.N``,
``model.visual``, ``lm_head``). Checkpoints on disk usually carry the older keys
(``model.layers.N``, ``visual``), which transformers converts on load and writes back on
save; ``module_name_for_key`` and ``key_for_module_name`` translate between the two so that
we can read either and write what the input used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class SmoothingPair:
    """AWQ scale migration: ``prev`` (a norm or linear) feeds ``linears``; ``inspect`` is
    the module whose output the scale search compares (llm-awq auto_scale).

    mixes_tokens: ``inspect`` mixes tokens (attention), so it must run on one whole sample
    at a time with that sample's keyword arguments; otherwise it is token-wise (MLP, Linear)
    and may run on any chunk of tokens.
    row_subset: the search may score a candidate on a subset of the Linears' output rows
        (the loss is a sum over them). Not for attention: q and k rows meet in q.k^T.
    rows_read_by: the Linear that reads those rows as its input columns, elementwise
        through an activation (gate/up -> down_proj); it is narrowed to the same subset.
        None when ``inspect`` is the Linear itself, whose rows are its outputs."""

    prev: str
    linears: tuple[str, ...]
    inspect: str
    mixes_tokens: bool = False
    row_subset: bool = False
    rows_read_by: str | None = None

    def __post_init__(self) -> None:
        if self.row_subset and self.rows_read_by is None and self.linears != (self.inspect,):
            raise ValueError(f"{self.inspect}: a row subset of {self.linears} needs the Linear that reads the rows")


@dataclass(frozen=True)
class ArchSpec:
    model_type: str
    layers_path: str
    # True-sequential groups: each group is quantized on inputs produced by the already
    # quantized earlier groups of the same layer (GPTQ paper, section 5 / AutoGPTQ).
    sequential_groups: tuple[tuple[str, ...], ...]
    smoothing_pairs: tuple[SmoothingPair, ...]
    # Module prefixes that stay in the input dtype, bit for bit.
    kept_modules: tuple[str, ...]

    @property
    def quantized_linears(self) -> tuple[str, ...]:
        return tuple(name for group in self.sequential_groups for name in group)

    def layer_prefix(self, index: int) -> str:
        return f"{self.layers_path}.{index}"


QWEN2_VL = ArchSpec(
    model_type="qwen2_vl",
    layers_path="model.language_model.layers",
    sequential_groups=(
        ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
        ("self_attn.o_proj",),
        ("mlp.gate_proj", "mlp.up_proj"),
        ("mlp.down_proj",),
    ),
    smoothing_pairs=(
        SmoothingPair("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "self_attn",
                      mixes_tokens=True),
        SmoothingPair("self_attn.v_proj", ("self_attn.o_proj",), "self_attn.o_proj", row_subset=True),
        SmoothingPair("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj"), "mlp", row_subset=True,
                      rows_read_by="mlp.down_proj"),
        SmoothingPair("mlp.up_proj", ("mlp.down_proj",), "mlp.down_proj", row_subset=True),
    ),
    kept_modules=("model.visual", "model.language_model.embed_tokens", "model.language_model.norm", "lm_head"),
)

# Old checkpoint key prefix -> transformers 5 module prefix. Order matters: first match wins.
_LEGACY_TO_MODULE = (
    (re.compile(r"^visual\."), "model.visual."),
    (re.compile(r"^model\.(?!language_model\.|visual\.)"), "model.language_model."),
)
_MODULE_TO_LEGACY = (
    (re.compile(r"^model\.visual\."), "visual."),
    (re.compile(r"^model\.language_model\."), "model."),
)


def module_name_for_key(key: str) -> str:
    """Checkpoint tensor key (old or new style) -> transformers 5 parameter name."""
    for pattern, replacement in _LEGACY_TO_MODULE:
        if pattern.search(key):
            return pattern.sub(replacement, key, count=1)
    return key


def key_for_module_name(name: str, legacy: bool) -> str:
    """transformers 5 parameter name -> checkpoint key in the requested style."""
    if not legacy:
        return name
    for pattern, replacement in _MODULE_TO_LEGACY:
        if pattern.search(name):
            return pattern.sub(replacement, name, count=1)
    return name


def uses_legacy_keys(keys) -> bool:
    """Whether a checkpoint's keys are the pre-4.52 style (``model.layers``, ``visual``)."""
    return not any(k.startswith(("model.language_model.", "model.visual.")) for k in keys)


_LAYER_KEY = re.compile(r"^model\.language_model\.layers\.(\d+)\.")


def layer_index_of(module_name: str) -> int | None:
    """Decoder layer index of a transformers-5 parameter name, or None outside the layers."""
    match = _LAYER_KEY.match(module_name)
    return int(match.group(1)) if match else None
