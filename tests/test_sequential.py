"""The hand-walked layer (pipeline/sequential.py) computes exactly what the layer's own
forward computes with the quantized modules, for every method that uses it."""

import pytest
import torch
from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

from qwen2vl_quant.arch import QWEN2_VL
from qwen2vl_quant.calibration.batches import build_samples
from qwen2vl_quant.config import GPTQConfig, RTNConfig
from qwen2vl_quant.pipeline.gptq_layer import quantize_layer_gptq, quantize_layer_rtn
from qwen2vl_quant.pipeline.layerwise import capture_inputs
from qwen2vl_quant.pipeline.runner import ErrorMeter, LayerRunner
from qwen2vl_quant.pipeline.source import ModelSource
from qwen2vl_quant.testing.sample_data import unbounded

CPU = torch.device("cpu")


@pytest.mark.parametrize("method", ["gptq", "rtn"])
def test_sequential_walk_matches_the_layer_forward(tiny_model_dir, calib_conversations, method):
    model = Qwen2VLForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).eval()
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    samples, _ = build_samples(calib_conversations, processor, unbounded())
    source = ModelSource(model)
    inputs = capture_inputs(source, samples, CPU, CPU, show_progress=False)
    runner = LayerRunner(inputs, CPU)
    layer = source.layer(0)
    originals = {n: layer.get_submodule(n).weight.detach().clone() for n in QWEN2_VL.quantized_linears}
    meter = ErrorMeter(layer, originals, total_tokens=sum(int(s.token_mask.sum()) for s in inputs))
    if method == "gptq":
        result = quantize_layer_gptq(layer, 0, runner, meter, QWEN2_VL, GPTQConfig(bits=4, group_size=32))
    else:
        result = quantize_layer_rtn(layer, 0, runner, meter, QWEN2_VL, RTNConfig(bits=4, group_size=32))
    assert [r.name for r in result.reports] == list(QWEN2_VL.quantized_linears)
    assert all(type(layer.get_submodule(n)).__name__ == "GPTQLinear" for n in QWEN2_VL.quantized_linears)
    expected = runner.forward_all(layer, keep_outputs=True)
    assert len(result.outputs) == len(expected) == len(inputs) > 0
    for got, want in zip(result.outputs, expected, strict=True):
        assert torch.equal(got, want)
    for name in QWEN2_VL.quantized_linears:
        assert 0 < meter.rel_error(name) < 1
