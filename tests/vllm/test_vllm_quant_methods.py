"""What ``quant_config.get_quant_method(layer, prefix)`` gives each Linear, and which
kernel vLLM picks for the quantized ones on an H100 (9.0) and an A100 (8.0)."""

from __future__ import annotations

import pytest

from vllm_harness import A100, H100, decoder_problems, kernel_problems, vision_problems

EXPECTED_METHOD = {"gptq": "AutoGPTQLinearMethod", "awq": "AutoAWQMarlinLinearMethod"}
CAPABILITIES = pytest.mark.parametrize("capability", [H100, A100], ids=["H100-sm90", "A100-sm80"])


def test_vision_linears_unquantized(good_checkpoint, loads):
    """Every vision Linear of the family, as vLLM builds it: visual.blocks.N.attn.qkv/proj
    and the block MLP (Qwen2-VL mlp.fc1/fc2, Qwen2.5-VL mlp.gate_up_proj/down_proj, Qwen3-VL
    mlp.linear_fc1/fc2), the merger (visual.merger.mlp.0/2; Qwen3-VL visual.merger.linear_fc1/2)
    and Qwen3-VL's visual.deepstack_merger_list.N.linear_fc1/2."""
    assert vision_problems(loads.ok(good_checkpoint)) == []


def test_decoder_linears_quantized(good_checkpoint, loads, manifest):
    method = EXPECTED_METHOD[manifest[good_checkpoint]["method"]]
    assert decoder_problems(loads.ok(good_checkpoint), method) == []


@CAPABILITIES
def test_kernel_choice(good_checkpoint, capability, loads):
    """vLLM's choose_mp_linear_kernel: Machete on 9.0, Marlin on 8.0, for every decoder Linear."""
    assert kernel_problems(loads.ok(good_checkpoint, capability=capability)) == []
