"""On a Qwen2-VL with activation outlier channels, calibrated methods beat round-to-nearest
on held-out samples (never the calibration ones)."""

import pytest
import torch
from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

from qwen2vl_quant.api import quantize
from qwen2vl_quant.calibration.batches import build_samples
from qwen2vl_quant.config import CalibrationConfig, GPTQConfig, RTNConfig
from qwen2vl_quant.testing.sample_data import make_test_images, sample_conversations, unbounded


def load(model_dir):
    return Qwen2VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.bfloat16).eval()


def final_hidden(model, samples):
    outputs = []
    with torch.inference_mode():
        for sample in samples:
            outputs.append(model(**sample.inputs, output_hidden_states=True).hidden_states[-1].float())
    return outputs


def relative_error(got, want):
    return (sum(float((g - w).pow(2).sum()) for g, w in zip(got, want)) / sum(float(w.pow(2).sum()) for w in want)) ** 0.5


@pytest.fixture(scope="module")
def setting(small_model_dir, calib_conversations, tmp_path_factory):
    processor = AutoProcessor.from_pretrained(small_model_dir)
    held_out_images = make_test_images(tmp_path_factory.mktemp("held_out"), n=4, seed=7)
    held_out, _ = build_samples(sample_conversations(held_out_images)[1:], processor, unbounded())
    reference = final_hidden(load(small_model_dir), held_out)
    return processor, held_out, reference


def error_of(config, setting, small_model_dir, calib_conversations):
    processor, held_out, reference = setting
    model = load(small_model_dir)
    quantize(model, calib_conversations, config, processor=processor, calibration=CalibrationConfig(),
             device="cpu", show_progress=False)
    return relative_error(final_hidden(model, held_out), reference)


@pytest.mark.parametrize("bits", [4, 8])
def test_gptq_error_is_clearly_below_round_to_nearest(bits, setting, small_model_dir, calib_conversations):
    rtn = error_of(RTNConfig(bits=bits, group_size=128), setting, small_model_dir, calib_conversations)
    gptq = error_of(GPTQConfig(bits=bits, group_size=128), setting, small_model_dir, calib_conversations)
    print(f"int{bits}: RTN {rtn:.4f}  GPTQ {gptq:.4f}")
    assert gptq < 0.85 * rtn, (gptq, rtn)
