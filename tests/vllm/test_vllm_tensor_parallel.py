"""Tensor parallelism with vLLM's own rules: vLLM's layers are built (and our checkpoints
loaded) as tensor-parallel rank r of N, and each quantized Linear's slice must pass
vLLM's Marlin/Machete shape checks and get the fast kernel.

Two parts: our --tensor-parallel outputs of the test models of each family (loaded, every
rank), and the real shapes of every released size of each family (``qwen2vl_quant.memory``:
Qwen2-VL 2B/7B/72B, Qwen2.5-VL 3B/7B/32B/72B, Qwen3-VL 2B/4B/8B/32B) padded by our
padded_intermediate_size (built on the meta device, no weights), for N in 2, 4, 8.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import pytest
import torch

from vllm_harness import (
    A100,
    FAMILIES,
    H100,
    engine_config,
    family_checkpoint,
    kernel_problems,
    load_problems,
    load_with_vllm,
    tp_shape_problems,
)

from qwen2vl_quant.memory import SIZES, model_config
from qwen2vl_quant.pipeline.padding import padded_intermediate_size

CAPABILITIES = pytest.mark.parametrize("capability", [H100, A100], ids=["H100-sm90", "A100-sm80"])
DROPPED = {"gptq": (".g_idx",), "awq": ()}

# (checkpoint, tensor-parallel degree): a checkpoint padded for N also serves N's divisors.
PADDED = [("gptq-int4-tp2", 2), ("gptq-int4-tp4", 2), ("gptq-int4-tp4", 4), ("awq-int4-tp4", 2),
          ("awq-int4-tp4", 4), ("qwen2_5_vl-gptq-int4-tp2", 2), ("qwen3_vl-gptq-int4-tp2", 2)]
PADDED_RANKS = [(name, tp, rank) for name, tp in PADDED for rank in range(tp)]


@CAPABILITIES
@pytest.mark.parametrize("name,tp,rank", PADDED_RANKS, ids=[f"{n}-tp{t}-rank{r}" for n, t, r in PADDED_RANKS])
def test_padded_checkpoint_per_rank(name, tp, rank, capability, loads, manifest):
    result = loads.ok(name, capability=capability, tp_size=tp, tp_rank=rank)
    assert load_problems(result, DROPPED[manifest[name]["method"]]) == []
    assert tp_shape_problems(result) == []
    assert kernel_problems(result) == []


@pytest.mark.parametrize("family", FAMILIES)
def test_unpadded_gptq_fails_the_checks(family, loads):
    """The checks bite: the unpadded test model (intermediate 1152 = 9 groups) at TP 2
    splits a group across the GPUs. vLLM 0.33 does not refuse it: on 8.0 it falls back
    from Marlin to the Humming kernel, and on 9.0 it even keeps Machete (which checks no
    group alignment), with 4 scale rows per rank for 4.5 groups of input."""
    name = family_checkpoint(family, "gptq-int4")
    for capability in (A100, H100):
        result = loads.ok(name, capability=capability, tp_size=2, tp_rank=0)
        problems = tp_shape_problems(result)
        assert any("mlp.down_proj" in p and "not divisible" in p for p in problems), problems
    assert kernel_problems(loads.ok(name, capability=A100, tp_size=2, tp_rank=0))


@pytest.mark.parametrize("family", FAMILIES)
def test_unpadded_awq_refused_by_vllm(family, loads):
    result = loads.get(family_checkpoint(family, "awq-int4"), capability=A100, tp_size=2, tp_rank=0)
    assert isinstance(result, ValueError) and "not aligned with the quantized weight shape" in str(result)


# ---------------------------------------------------------------------------------------------
# Real shapes of every released size (qwen2vl_quant.memory.SIZES / model_config: the
# config.json of the released -Instruct checkpoints), one decoder layer and one vision
# block (every layer has the same shapes), in the family's own config.json and key style
# ---------------------------------------------------------------------------------------------

REAL_SIZES = list(SIZES)  # (family, size)
FORMATS = ("gptq-int4", "gptq-int8", "awq-int4")  # -> the family's template checkpoint
LEAVES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
          "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
PROCESSOR_FILES = ("tokenizer.json", "tokenizer_config.json", "processor_config.json", "chat_template.jinja",
                   "chat_template.json", "generation_config.json", "preprocessor_config.json",
                   "video_preprocessor_config.json")
# Vision-config fields that set shapes (whichever the family's config has), from model_config.
VISION_SHAPE_KEYS = ("embed_dim", "mlp_ratio", "hidden_size", "intermediate_size", "num_heads", "out_hidden_size",
                     "patch_size", "spatial_merge_size", "temporal_patch_size", "window_size", "fullatt_block_indexes",
                     "num_position_embeddings", "deepstack_visual_indexes")
REFUSE_HEADS = "must be divisible by tensor parallel size"


@functools.cache
def _model_config(family: str, size: str):
    return model_config(family, size)


def real_text(family: str, size: str) -> dict:
    """The published text shapes of a size, read off ``model_config(family, size)``."""
    text = _model_config(family, size).text_config
    out = {key: getattr(text, key) for key in ("hidden_size", "intermediate_size", "num_attention_heads",
                                               "num_key_value_heads", "vocab_size", "tie_word_embeddings")}
    if family == "qwen3_vl":  # Qwen3-VL sets head_dim apart from hidden / heads (4B, 32B)
        out["head_dim"] = text.head_dim
    return out


def real_vision(family: str, size: str) -> dict:
    return {k: v for k, v in _model_config(family, size).vision_config.to_dict().items() if k in VISION_SHAPE_KEYS}


def vision_mlp_width(family: str, size: str) -> int:
    vision = real_vision(family, size)
    return vision["embed_dim"] * vision["mlp_ratio"] if family == "qwen2_vl" else vision["intermediate_size"]


def real_shape_dir(root: Path, template: Path, family: str, size: str, intermediate: int) -> Path:
    """config.json of a real size with our quantization_config, our tokenizer files, and a
    safetensors file whose names (in the template's key style) and dtypes (not shapes) are
    those of a quantized checkpoint: vLLM reads the dtypes to decide which modules are
    quantized."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    out = root / f"{template.name}-{size}-{intermediate}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in PROCESSOR_FILES:
        if (template / name).is_file():
            shutil.copy(template / name, out / name)
    config = json.loads((template / "config.json").read_text())
    real = real_text(family, size)
    text = config["text_config"]
    text.update(real, intermediate_size=intermediate, num_hidden_layers=1)
    if "max_window_layers" in text:
        text["max_window_layers"] = 1
    for block in (text, config):
        block.pop("layer_types", None)
        if family != "qwen3_vl":
            block.pop("head_dim", None)
    config["tie_word_embeddings"] = real["tie_word_embeddings"]
    config["vision_config"].update(real_vision(family, size), depth=1)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    keys = []
    for shard in template.glob("*.safetensors"):
        with safe_open(str(shard), "pt") as f:
            keys += list(f.keys())
    legacy = not any(k.startswith("model.language_model.") for k in keys)
    layers, visual = ("model.layers", "visual") if legacy else ("model.language_model.layers", "model.visual")
    tensors = {}
    for leaf in LEAVES:
        for name, dtype in (("qweight", torch.int32), ("qzeros", torch.int32), ("scales", torch.float16)):
            tensors[f"{layers}.0.{leaf}.{name}"] = torch.zeros(1, dtype=dtype)
    tensors[f"{visual}.blocks.0.attn.qkv.weight"] = torch.zeros(1, dtype=torch.bfloat16)
    save_file(tensors, str(out / "model.safetensors"))
    return out


@pytest.fixture(scope="session")
def real_root(tmp_path_factory):
    return tmp_path_factory.mktemp("real_shapes")


REAL_CASES = [(family, size, tp, fmt) for family, size in REAL_SIZES for tp in (2, 4, 8) for fmt in FORMATS]


@pytest.mark.parametrize("family,size,tp,fmt", REAL_CASES, ids=[f"{f}-{s}-tp{t}-{m}" for f, s, t, m in REAL_CASES])
def test_real_shapes(family, size, tp, fmt, real_root, checkpoints, real_shape_table):
    """Padded by our padded_intermediate_size, every quantized Linear slice of a real size
    passes vLLM's checks and gets Machete (9.0) / Marlin (8.0) at TP N, where vLLM allows
    N at all. vLLM's own refusals, pinned: attention heads not divisible by N (Qwen2-VL-2B
    has 12, the 7Bs 28); and the vision tower, which vLLM shards as well, whose MLP width
    must divide by N (Qwen2.5-VL's 3420 does not by 8: vLLM 0.33 fails an assertion while
    building it, unless the vision tower is replicated with --mm-encoder-tp-mode data)."""
    template = checkpoints / family_checkpoint(family, fmt)
    group = json.loads((template / "config.json").read_text())["quantization_config"]["group_size"]
    original = real_text(family, size)["intermediate_size"]
    padded = padded_intermediate_size(original, tp, group)
    model_dir = real_shape_dir(real_root, template, family, size, padded)
    row = dict(family=family, size=size, tp=tp, fmt=fmt, intermediate=original, padded=padded)
    heads = real_text(family, size)["num_attention_heads"]
    if heads % tp:
        with pytest.raises(Exception, match=f"{REFUSE_HEADS} \\({tp}\\)"):
            engine_config(model_dir, tensor_parallel=tp)
        real_shape_table.append(row | dict(outcome=f"refused by vLLM: {heads} heads"))
        return
    extra = {}
    vision_width = vision_mlp_width(family, size)
    if vision_width % tp:
        # vLLM 0.33 (linear.py MergedColumnParallelLinear) asserts while building the vision MLP.
        with pytest.raises(AssertionError):
            load_with_vllm(model_dir, capability=H100, tp_size=tp, tp_rank=tp - 1, load_weights=False)
        extra = dict(mm_encoder_tp_mode="data")
    for capability in (H100, A100):
        config = engine_config(model_dir, tensor_parallel=tp, **extra)
        result = load_with_vllm(model_dir, capability=capability, tp_size=tp, tp_rank=tp - 1, load_weights=False,
                                vllm_config=config)
        assert tp_shape_problems(result) == []
        assert kernel_problems(result) == []
    note = f" (vision MLP {vision_width} % {tp}: needs --mm-encoder-tp-mode data)" if extra else ""
    real_shape_table.append(row | dict(outcome=f"passes{note}"))


UNPADDED = [(family, size, tp) for family, size in REAL_SIZES for tp in (2, 4, 8)
            if padded_intermediate_size(real_text(family, size)["intermediate_size"], tp, 128)
            != real_text(family, size)["intermediate_size"]
            and real_text(family, size)["num_attention_heads"] % tp == 0]


@pytest.mark.parametrize("family,size,tp", UNPADDED, ids=[f"{f}-{s}-tp{t}" for f, s, t in UNPADDED])
def test_real_unpadded_fails_the_checks(family, size, tp, real_root, checkpoints, real_shape_table):
    """Wherever our padding changes a real size (Qwen2-VL-72B and Qwen2.5-VL-72B's 29568 at
    TP 2: down_proj's input slice of 14784 is 115.5 groups), the unpadded size fails
    vLLM's checks: the padding is needed, not cosmetic."""
    original = real_text(family, size)["intermediate_size"]
    model_dir = real_shape_dir(real_root, checkpoints / family_checkpoint(family, "gptq-int4"), family, size,
                               original)
    extra = dict(mm_encoder_tp_mode="data") if vision_mlp_width(family, size) % tp else {}
    config = engine_config(model_dir, tensor_parallel=tp, **extra)
    result = load_with_vllm(model_dir, capability=H100, tp_size=tp, tp_rank=0, load_weights=False, vllm_config=config)
    problems = tp_shape_problems(result)
    assert any("mlp.down_proj" in p for p in problems), problems
    real_shape_table.append(dict(family=family, size=size, tp=tp, fmt="gptq-int4", intermediate=original,
                                 padded=original, outcome="unpadded: fails " + problems[0].split(": ", 1)[-1][:60]))
