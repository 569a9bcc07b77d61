"""Config detection: the quantization method and settings vLLM derives from each checkpoint
(vLLM's own ``EngineArgs(...).create_engine_config()``, with VLLM_TARGET_DEVICE=cpu)."""

from __future__ import annotations

import pytest

from vllm_harness import H100, as_cuda, engine_config

from qwen2vl_quant.pipeline.padding import padded_intermediate_size

ARCHITECTURES = {"qwen2_vl": "Qwen2VLForConditionalGeneration", "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
                 "qwen3_vl": "Qwen3VLForConditionalGeneration"}
DECODER_LEAVES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                  "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def test_detected_method(good_checkpoint, checkpoints, manifest):
    """vLLM resolves the family's own model class. GPTQ is detected as auto_gptq with our bits/group/sym and desc_act false (vLLM refuses
    desc_act true: gptq-int4-actorder fails here until the writer says desc_act false for
    static groups); AWQ as AutoAWQ (named "awq" on the CPU platform, "auto_awq" on CUDA)."""
    from vllm.model_executor.layers.quantization.auto_awq import AutoAWQConfig
    from vllm.model_executor.layers.quantization.auto_gptq import AutoGPTQConfig

    entry = manifest[good_checkpoint]
    config = engine_config(checkpoints / good_checkpoint)
    quant = config.quant_config
    hf_quant = config.model_config.hf_config.quantization_config
    assert config.model_config.hf_config.model_type == entry["family"]
    assert config.model_config.architectures == [ARCHITECTURES[entry["family"]]]
    if entry["method"] == "gptq":
        assert config.model_config.quantization == "auto_gptq"
        assert isinstance(quant, AutoGPTQConfig)
        assert (quant.weight_bits, quant.group_size, quant.is_sym, quant.desc_act) == (
            entry["bits"], entry["group_size"], True, False)
        assert quant.quant_type == AutoGPTQConfig.TYPE_MAP[(entry["bits"], True)]
        with as_cuda(H100):
            assert AutoGPTQConfig.override_quantization_method(hf_quant, None) == "auto_gptq"
    else:
        assert config.model_config.quantization in ("awq", "auto_awq")
        assert isinstance(quant, AutoAWQConfig)
        assert (quant.weight_bits, quant.group_size, quant.zero_point) == (entry["bits"], entry["group_size"], True)
        with as_cuda(H100):
            assert AutoAWQConfig.override_quantization_method(hf_quant, None) == "auto_awq"


def test_quantized_modules_vllm_reads(good_checkpoint, checkpoints, manifest):
    """Which modules vLLM will treat as quantized, as it derives them from the checkpoint
    (GPTQ: from the safetensors dtypes; AWQ: modules_to_not_convert): exactly the decoder
    Linears, never the vision tower."""
    entry = manifest[good_checkpoint]
    config = engine_config(checkpoints / good_checkpoint)
    quant = config.quant_config
    layers = config.model_config.hf_text_config.num_hidden_layers
    prefix = "model.language_model.layers" if entry["key_style"] == "model.language_model" else "model.layers"
    decoder = {f"{prefix}.{i}.{leaf}" for i in range(layers) for leaf in DECODER_LEAVES}
    if entry["method"] == "gptq":
        assert set(quant.modules_in_block_to_quantize) == decoder
    else:
        assert {"visual", "model.visual"} <= set(quant.modules_to_not_convert)


def test_intermediate_size(good_checkpoint, checkpoints, manifest):
    """A --tensor-parallel output declares the padded intermediate size vLLM will build."""
    entry = manifest[good_checkpoint]
    config = engine_config(checkpoints / good_checkpoint)
    size = config.model_config.hf_text_config.intermediate_size
    base = engine_config(checkpoints / entry["base"]).model_config.hf_text_config.intermediate_size
    if entry["tensor_parallel"]:
        assert size == padded_intermediate_size(base, entry["tensor_parallel"], entry["group_size"])
        assert size > base, "the test model is meant to need padding"
    else:
        assert size == base


@pytest.mark.parametrize("name", ["gptq-int4-actorder"])
def test_actorder_g_idx_is_trivial(name, checkpoints, manifest):
    """vLLM drops g_idx; an act-order checkpoint it accepts must have g_idx = k // group."""
    from vllm_harness import g_idx_problems

    if name not in manifest:
        pytest.fail(f"{name} missing from the checkpoint folder")
    assert g_idx_problems(checkpoints / name, manifest[name]["group_size"]) == []
