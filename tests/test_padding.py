"""Tensor-parallel padding of the MLP: same function, sizes vLLM can split."""

import json

import torch
from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

from qwen2vl_quant.api import quantize_checkpoint
from qwen2vl_quant.config import GPTQConfig
from qwen2vl_quant.loading import load_quantized
from qwen2vl_quant.arch import QWEN2_VL
from qwen2vl_quant.pipeline.padding import pad_mlp, padded_intermediate_size


def test_padded_sizes():
    assert padded_intermediate_size(29568, 8, 128) == 29696  # what Qwen shipped for 72B
    assert padded_intermediate_size(8960, 2, 128) == 8960  # already splittable
    assert padded_intermediate_size(18944, 4, 64) == 18944  # 7B splits 4 ways as it is
    assert padded_intermediate_size(18944, 8, 128) == 19456
    for tp in (1, 2, 4, 8):
        size = padded_intermediate_size(29568, tp, 128)
        assert size >= 29568 and (size // tp) % 128 == 0


# The README's table: every released size of every family, group 128 (written out by hand
# from vLLM's rule, a slice a multiple of 128, not computed by the function under test).
README_TABLE = {  # intermediate: {TP: padded}
    8960: {2: 8960, 4: 9216, 8: 9216},  # Qwen2-VL-2B
    18944: {2: 18944, 4: 18944, 8: 19456},  # Qwen2-VL-7B, Qwen2.5-VL-7B
    29568: {2: 29696, 4: 29696, 8: 29696},  # Qwen2-VL-72B, Qwen2.5-VL-72B
    11008: {2: 11008, 4: 11264, 8: 11264},  # Qwen2.5-VL-3B
    27648: {2: 27648, 4: 27648, 8: 27648},  # Qwen2.5-VL-32B
    6144: {2: 6144, 4: 6144, 8: 6144},  # Qwen3-VL-2B
    9728: {2: 9728, 4: 9728, 8: 10240},  # Qwen3-VL-4B
    12288: {2: 12288, 4: 12288, 8: 12288},  # Qwen3-VL-8B
    25600: {2: 25600, 4: 25600, 8: 25600},  # Qwen3-VL-32B
}


def test_every_released_size_pads_as_the_readme_says():
    from qwen2vl_quant.memory import SIZES

    assert {shape[1] for shape in SIZES.values()} == set(README_TABLE)
    for size, by_tp in README_TABLE.items():
        for tp, padded in by_tp.items():
            assert padded_intermediate_size(size, tp, 128) == padded, (size, tp)


def test_padded_layer_computes_the_same(small_model_dir):
    model = Qwen2VLForConditionalGeneration.from_pretrained(small_model_dir, dtype=torch.float32)
    layer = model.model.language_model.layers[0]
    x = torch.randn(1, 7, layer.hidden_size)
    before = layer.mlp(x)
    pad_mlp(layer, QWEN2_VL, 1024)
    assert layer.mlp.gate_proj.out_features == 1024 and layer.mlp.down_proj.in_features == 1024
    assert torch.equal(layer.mlp(x), before)


def test_padded_checkpoint_loads_and_matches(small_model_dir, calib_conversations, tmp_path):
    processor = AutoProcessor.from_pretrained(small_model_dir)
    config = GPTQConfig(bits=4, group_size=128)
    plain, padded = tmp_path / "plain", tmp_path / "padded"
    quantize_checkpoint(small_model_dir, plain, config, calib_data=calib_conversations, show_progress=False)
    quantize_checkpoint(small_model_dir, padded, config, calib_data=calib_conversations, tensor_parallel=8,
                        show_progress=False)
    saved = json.loads((padded / "config.json").read_text())
    assert saved["text_config"]["intermediate_size"] == 1024
    text = processor.apply_chat_template([{"role": "user", "content": "Name three colors."}], tokenize=False,
                                         add_generation_prompt=True)
    inputs = processor(text=[text], return_tensors="pt")
    with torch.inference_mode():
        a = load_quantized(plain, dtype=torch.float32)(**inputs).logits
        b = load_quantized(padded, dtype=torch.float32)(**inputs).logits
        reference = Qwen2VLForConditionalGeneration.from_pretrained(small_model_dir, dtype=torch.float32)(**inputs).logits
    # The float functions are identical; GPTQ's solve differs only by float summation order
    # (the Hessian has twice the columns), so both are equally good quantizations.
    err_plain = float((a - reference).norm() / reference.norm())
    err_padded = float((b - reference).norm() / reference.norm())
    assert abs(err_padded - err_plain) < 0.15 * err_plain, (err_plain, err_padded)
    padded_model = load_quantized(padded, dtype=torch.float32)
    down = padded_model.model.language_model.layers[0].mlp.down_proj.dequantize()
    gate = padded_model.model.language_model.layers[0].mlp.gate_proj.dequantize()
    assert torch.all(down[:, 512:] == 0) and torch.all(gate[512:] == 0)
