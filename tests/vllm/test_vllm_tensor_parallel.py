"""Tensor parallelism with vLLM's own rules: vLLM's layers are built (and our checkpoints
loaded) as tensor-parallel rank r of N, and each quantized Linear's slice must pass
vLLM's Marlin/Machete shape checks and get the fast kernel.

Two parts: our --tensor-parallel outputs of the test model (loaded, every rank), and
the real Qwen2-VL-2B/7B/72B shapes padded by our padded_intermediate_size (built on the
meta device, no weights), for N in 2, 4, 8.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from vllm_harness import A100, H100, engine_config, kernel_problems, load_problems, load_with_vllm, tp_shape_problems

from qwen2vl_quant.pipeline.padding import padded_intermediate_size

CAPABILITIES = pytest.mark.parametrize("capability", [H100, A100], ids=["H100-sm90", "A100-sm80"])
DROPPED = {"gptq": (".g_idx",), "awq": ()}

# (checkpoint, tensor-parallel degree): a checkpoint padded for N also serves N's divisors.
PADDED = [("gptq-int4-tp2", 2), ("gptq-int4-tp4", 2), ("gptq-int4-tp4", 4), ("awq-int4-tp4", 2),
          ("awq-int4-tp4", 4)]
PADDED_RANKS = [(name, tp, rank) for name, tp in PADDED for rank in range(tp)]


@CAPABILITIES
@pytest.mark.parametrize("name,tp,rank", PADDED_RANKS, ids=[f"{n}-tp{t}-rank{r}" for n, t, r in PADDED_RANKS])
def test_padded_checkpoint_per_rank(name, tp, rank, capability, loads, manifest):
    result = loads.ok(name, capability=capability, tp_size=tp, tp_rank=rank)
    assert load_problems(result, DROPPED[manifest[name]["method"]]) == []
    assert tp_shape_problems(result) == []
    assert kernel_problems(result) == []


def test_unpadded_gptq_fails_the_checks(loads):
    """The checks bite: the unpadded test model (intermediate 1152 = 9 groups) at TP 2
    splits a group across the GPUs. vLLM 0.33 does not refuse it: on 8.0 it falls back
    from Marlin to the Humming kernel, and on 9.0 it even keeps Machete (which checks no
    group alignment), with 4 scale rows per rank for 4.5 groups of input."""
    for capability in (A100, H100):
        result = loads.ok("gptq-int4", capability=capability, tp_size=2, tp_rank=0)
        problems = tp_shape_problems(result)
        assert any("mlp.down_proj" in p and "not divisible" in p for p in problems), problems
    assert kernel_problems(loads.ok("gptq-int4", capability=A100, tp_size=2, tp_rank=0))


def test_unpadded_awq_refused_by_vllm(loads):
    result = loads.get("awq-int4", capability=A100, tp_size=2, tp_rank=0)
    assert isinstance(result, ValueError) and "not aligned with the quantized weight shape" in str(result)


# ---------------------------------------------------------------------------------------------
# Real Qwen2-VL shapes (config.json of the released checkpoints; one decoder layer and one
# vision block, since every layer has the same shapes)
# ---------------------------------------------------------------------------------------------

REAL = {
    "2B": dict(hidden_size=1536, intermediate_size=8960, num_attention_heads=12, num_key_value_heads=2,
               vocab_size=151936, tie_word_embeddings=True),
    "7B": dict(hidden_size=3584, intermediate_size=18944, num_attention_heads=28, num_key_value_heads=4,
               vocab_size=152064, tie_word_embeddings=False),
    "72B": dict(hidden_size=8192, intermediate_size=29568, num_attention_heads=64, num_key_value_heads=8,
                vocab_size=152064, tie_word_embeddings=False),
}
VISION = dict(embed_dim=1280, num_heads=16, depth=1)
FORMATS = {"gptq-int4": "gptq-int4", "gptq-int8": "gptq-int8", "awq-int4": "awq-int4"}  # -> template checkpoint
LEAVES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
          "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
PROCESSOR_FILES = ("tokenizer.json", "tokenizer_config.json", "processor_config.json", "chat_template.jinja",
                   "generation_config.json", "preprocessor_config.json", "video_preprocessor_config.json")


def real_shape_dir(root: Path, template: Path, size: str, intermediate: int) -> Path:
    """config.json of a real size with our quantization_config, our tokenizer files, and a
    safetensors file whose names and dtypes (not shapes) are those of a quantized
    checkpoint: vLLM reads the dtypes to decide which modules are quantized."""
    from safetensors.torch import save_file

    out = root / f"{template.name}-{size}-{intermediate}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in PROCESSOR_FILES:
        if (template / name).is_file():
            shutil.copy(template / name, out / name)
    config = json.loads((template / "config.json").read_text())
    text = config["text_config"]
    text.update(REAL[size], intermediate_size=intermediate, num_hidden_layers=1, max_window_layers=1)
    for block in (text, config):
        block.pop("layer_types", None)
        block.pop("head_dim", None)
    config["tie_word_embeddings"] = REAL[size]["tie_word_embeddings"]
    config["vision_config"].update(VISION, hidden_size=REAL[size]["hidden_size"])
    (out / "config.json").write_text(json.dumps(config, indent=2))
    tensors = {}
    for leaf in LEAVES:
        for name, dtype in (("qweight", torch.int32), ("qzeros", torch.int32), ("scales", torch.float16)):
            tensors[f"model.layers.0.{leaf}.{name}"] = torch.zeros(1, dtype=dtype)
    tensors["visual.blocks.0.attn.qkv.weight"] = torch.zeros(1, dtype=torch.bfloat16)
    save_file(tensors, str(out / "model.safetensors"))
    return out


@pytest.fixture(scope="session")
def real_root(tmp_path_factory):
    return tmp_path_factory.mktemp("real_shapes")


REAL_CASES = [(size, tp, fmt) for size in REAL for tp in (2, 4, 8) for fmt in FORMATS]


@pytest.mark.parametrize("size,tp,fmt", REAL_CASES, ids=[f"{s}-tp{t}-{f}" for s, t, f in REAL_CASES])
def test_real_shapes(size, tp, fmt, real_root, checkpoints):
    """Padded by our padded_intermediate_size, every quantized Linear slice of a real size
    passes vLLM's checks and gets Machete (9.0) / Marlin (8.0) at TP N, where vLLM allows
    N at all (its own rule: attention heads divisible by N; 2B has 12, 7B 28)."""
    template = checkpoints / FORMATS[fmt]
    group = json.loads((template / "config.json").read_text())["quantization_config"]["group_size"]
    padded = padded_intermediate_size(REAL[size]["intermediate_size"], tp, group)
    model_dir = real_shape_dir(real_root, template, size, padded)
    heads = REAL[size]["num_attention_heads"]
    if heads % tp:
        with pytest.raises(Exception, match=f"must be divisible by tensor parallel size \\({tp}\\)"):
            engine_config(model_dir, tensor_parallel=tp)
        return
    for capability in (H100, A100):
        result = load_with_vllm(model_dir, capability=capability, tp_size=tp, tp_rank=tp - 1, load_weights=False)
        assert tp_shape_problems(result) == []
        assert kernel_problems(result) == []


def test_real_72b_unpadded_fails_the_checks(real_root, checkpoints):
    """72B's 29568 at TP 2 gives down_proj an input slice of 14784 = 115.5 groups."""
    model_dir = real_shape_dir(real_root, checkpoints / "gptq-int4", "72B", 29568)
    result = load_with_vllm(model_dir, capability=H100, tp_size=2, tp_rank=0, load_weights=False)
    problems = tp_shape_problems(result)
    assert any("mlp.down_proj" in p for p in problems), problems
