"""The one place that knows the shape of the model: a small typed spec, not isinstance chains.

Everything the pipeline needs to know about Qwen2-VL is in ``QWEN2_VL`` below: where the
decoder layers are and how each is built, what is quantized and in which order, AWQ's
smoothing pairs, what runs before the first layer, what stays as it is, and how checkpoint
keys map to module names. Qwen2.5-VL and Qwen3-VL are specs derived from it (what differs
is said there). A new model family is a new spec (and its tiny test model).

Module names are those of transformers 5.x (``model.language_model.layers.N``,
``model.visual``, ``lm_head``). Checkpoints on disk often carry the older keys
(``model.layers.N``, ``visual``), which transformers converts on load and writes back on
save; ``module_name_for_key`` and ``key_for_module_name`` translate between the two so that
we read either and write what the input used.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from dataclasses import dataclass
from functools import cached_property

from .errors import ModelLoadError


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
class DecoderLayout:
    """The pre-norm residual decoder layer (Qwen2DecoderLayer and its descendants):

        h2  = h  + attention(input_norm(h))
        out = h2 + mlp(post_attention_norm(h2)),  mlp(x) = down(activation(gate(x)) * up(x))

    pipeline/sequential.py walks a layer by these names to compute each group's input once."""

    input_norm: str = "input_layernorm"
    attention: str = "self_attn"
    post_attention_norm: str = "post_attention_layernorm"
    mlp: str = "mlp"
    mlp_activation: str = "mlp.act_fn"


@dataclass(frozen=True)
class ArchSpec:
    model_type: str
    # transformers classes as "module:Name", imported when a model is built (this module
    # imports neither torch nor transformers, so the CLI can read a spec before loading them).
    model_class_path: str
    decoder_layer_class_path: str
    layers_path: str
    decoder: DecoderLayout
    # True-sequential groups, in forward order: each group is quantized on inputs produced
    # by the already quantized earlier groups of the same layer (GPTQ paper, section 5 /
    # AutoGPTQ). The Linears of one group read the same input.
    sequential_groups: tuple[tuple[str, ...], ...]
    smoothing_pairs: tuple[SmoothingPair, ...]
    # AWQ never clips these: their outputs matter only through q.k^T, which a per-Linear
    # output error does not see (AutoAWQ _search_best_clip, avoid_clipping "q_", "k_").
    not_clipped: tuple[str, ...]
    # Run before the first decoder layer; loaded for the layer-0 capture, then released.
    visual: str
    embeddings: str
    # Everything outside the decoder layers: copied bit for bit, in the input dtype.
    kept_modules: tuple[str, ...]
    # Older checkpoint key prefix -> transformers 5 module prefix (first match wins).
    legacy_key_prefixes: tuple[tuple[str, str], ...]
    # The key style transformers' save_pretrained writes for this family (older keys for
    # Qwen2-VL and Qwen2.5-VL); what save_quantized writes a model in memory with.
    saves_legacy_keys: bool = True
    # DeepStack (Qwen3-VL): keywords of the text model's forward that carry the visual
    # positions and the features added there after the first layers; None without it.
    text_model: str = "model.language_model"
    deepstack_kwargs: tuple[str, str] | None = None

    def model_class(self) -> type:
        return _import(self.model_class_path)

    def decoder_layer_class(self) -> type:
        return _import(self.decoder_layer_class_path)

    @property
    def quantized_linears(self) -> tuple[str, ...]:
        return tuple(name for group in self.sequential_groups for name in group)

    @property
    def front_modules(self) -> tuple[str, str]:
        return (self.visual, self.embeddings)

    def layer_prefix(self, index: int) -> str:
        return f"{self.layers_path}.{index}"

    @cached_property
    def _layer_key(self) -> re.Pattern:
        return re.compile(rf"^{re.escape(self.layers_path)}\.(\d+)\.")

    def layer_index_of(self, module_name: str) -> int | None:
        """Decoder layer index of a module parameter name, or None outside the layers."""
        match = self._layer_key.match(module_name)
        return int(match.group(1)) if match else None

    def is_kept(self, module_name: str) -> bool:
        return any(module_name == kept or module_name.startswith(kept + ".") for kept in self.kept_modules)

    def module_name_for_key(self, key: str) -> str:
        """Checkpoint tensor key (old or new style) -> transformers 5 parameter name."""
        if key.startswith(tuple(new for _, new in self.legacy_key_prefixes)):
            return key
        for old, new in self.legacy_key_prefixes:
            if key.startswith(old):
                return new + key[len(old):]
        return key

    def key_for_module_name(self, name: str, legacy: bool) -> str:
        """transformers 5 parameter name -> checkpoint key in the requested style."""
        if legacy:
            for old, new in self.legacy_key_prefixes:
                if name.startswith(new):
                    return old + name[len(new):]
        return name

    def uses_legacy_keys(self, keys) -> bool:
        """Whether a checkpoint's keys are the older style (``model.layers``, ``visual``)."""
        return not any(k.startswith(tuple(new for _, new in self.legacy_key_prefixes)) for k in keys)


def _import(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


QWEN2_VL = ArchSpec(
    model_type="qwen2_vl",
    model_class_path="transformers:Qwen2VLForConditionalGeneration",
    decoder_layer_class_path="transformers.models.qwen2_vl.modeling_qwen2_vl:Qwen2VLDecoderLayer",
    layers_path="model.language_model.layers",
    decoder=DecoderLayout(),
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
    not_clipped=("self_attn.q_proj", "self_attn.k_proj"),
    visual="model.visual",
    embeddings="model.language_model.embed_tokens",
    kept_modules=("model.visual", "model.language_model.embed_tokens", "model.language_model.norm", "lm_head"),
    legacy_key_prefixes=(("visual.", "model.visual."), ("model.", "model.language_model.")),
)

# Qwen2.5-VL: the same decoder (q/k/v with biases), a window-attention vision tower with an
# RMSNorm/SwiGLU MLP, and absolute time positions for video (second_per_grid_ts), which reach
# the decoder only through the captured position embeddings. Its checkpoints use the older keys.
QWEN2_5_VL = dataclasses.replace(
    QWEN2_VL,
    model_type="qwen2_5_vl",
    model_class_path="transformers:Qwen2_5_VLForConditionalGeneration",
    decoder_layer_class_path="transformers.models.qwen2_5_vl.modeling_qwen2_5_vl:Qwen2_5_VLDecoderLayer",
)

# Qwen3-VL (dense): q_norm/k_norm inside attention, after q/k_proj. AWQ's input_layernorm ->
# q/k/v pair is still valid: its scales multiply the projections' input columns, and the
# norms act on the projections' outputs, which the fold leaves unchanged. DeepStack: the text
# model adds vision features at the visual positions after its first layers (prefill only,
# which every calibration forward is). Its checkpoints use the newer keys: older ones load
# in transformers without an error and leave the decoder random.
QWEN3_VL = dataclasses.replace(
    QWEN2_VL,
    model_type="qwen3_vl",
    model_class_path="transformers:Qwen3VLForConditionalGeneration",
    decoder_layer_class_path="transformers.models.qwen3_vl.modeling_qwen3_vl:Qwen3VLTextDecoderLayer",
    saves_legacy_keys=False,
    deepstack_kwargs=("visual_pos_masks", "deepstack_visual_embeds"),
)

# Every model family this tool quantizes, by the model_type of its config.json.
SPECS = {spec.model_type: spec for spec in (QWEN2_VL, QWEN2_5_VL, QWEN3_VL)}
# Known and refused, with why (anything else: "not supported").
REFUSED = {
    "qwen3_vl_moe": "Qwen3-VL MoE keeps its experts as fused 3-D tensors, not Linears",
    "qwen2": "a language model without a vision tower (use a GPTQ/AWQ tool for LLMs)",
    "qwen3": "a language model without a vision tower (use a GPTQ/AWQ tool for LLMs)",
}


def spec_for(model_type: str | None) -> ArchSpec:
    """The spec of a config's model_type, or a one-line error listing what is supported."""
    if model_type not in SPECS:
        why = f" ({REFUSED[model_type]})" if model_type in REFUSED else ""
        raise ModelLoadError(f"a {model_type!r} model is not supported{why}; qwen2vl-quant handles "
                             + ", ".join(repr(t) for t in SPECS))
    return SPECS[model_type]
