"""Capturing layer-0 inputs: replaying them through the decoder layers gives the model's own
hidden states, for text, image and video samples, from memory and from a streamed directory."""

import pytest
import torch
from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

from qwen2vl_quant.calibration.batches import build_samples
from qwen2vl_quant.pipeline.capture import StopForward
from qwen2vl_quant.pipeline.layerwise import capture_inputs
from qwen2vl_quant.pipeline.source import DirectorySource, ModelSource
from qwen2vl_quant.testing.sample_data import unbounded
from replay import reference_hidden, replay

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def setup(tiny_sharded_model_dir, calib_conversations):
    model = Qwen2VLForConditionalGeneration.from_pretrained(tiny_sharded_model_dir, dtype=torch.bfloat16).eval()
    processor = AutoProcessor.from_pretrained(tiny_sharded_model_dir)
    samples, summary = build_samples(calib_conversations, processor, unbounded())
    assert summary.image_tokens > 0 and summary.video_tokens > 0
    return model, samples


@pytest.mark.parametrize("source_kind", ["memory", "directory"])
def test_replayed_inputs_reproduce_the_models_hidden_states(setup, tiny_sharded_model_dir, source_kind):
    model, samples = setup
    source = ModelSource(model) if source_kind == "memory" else DirectorySource(tiny_sharded_model_dir)
    inputs = capture_inputs(source, samples, CPU, CPU)
    assert len(inputs) == len(samples)
    kw = inputs[0].kwargs
    cos, sin = kw["position_embeddings"]
    assert cos.shape[-1] == model.config.text_config.hidden_size // model.config.text_config.num_attention_heads
    layers = [source.layer(i) for i in range(source.num_layers)]
    replayed, reference = replay(layers, inputs), reference_hidden(model, samples)
    assert len(replayed) == len(reference) == len(samples) > 0
    for got, want in zip(replayed, reference, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_vision_samples_use_mrope_positions(setup):
    model, samples = setup
    inputs = capture_inputs(ModelSource(model), samples, CPU, CPU)
    image_sample = next(i for i, s in enumerate(samples) if "pixel_values" in s.inputs)
    cos, _ = inputs[image_sample].kwargs["position_embeddings"]
    seq = samples[image_sample].inputs["input_ids"].shape[1]
    # With M-RoPE the image tokens share temporal positions: the cos table is not the 1-D one.
    text_only = model.model.language_model.rotary_emb(cos, torch.arange(seq).view(1, 1, -1).expand(3, 1, -1))[0]
    assert not torch.equal(cos, text_only)


def test_stop_exception_is_not_a_value_error():
    assert not issubclass(StopForward, ValueError)


def test_capture_flushes_subnormals_only_while_it_runs(setup):
    """The capture treats subnormal floats as zero (a slow path on CPUs) and then puts the
    flag back, so the caller's arithmetic is as before."""
    from qwen2vl_quant.pipeline.capture import flush_denormals

    tiny = torch.tensor([1e-40], dtype=torch.float32)  # subnormal in float32
    assert float(tiny * 2) != 0
    with flush_denormals():
        assert float(tiny * 2) == 0
    assert float(tiny * 2) != 0
    model, samples = setup
    capture_inputs(ModelSource(model), samples[:1], CPU, CPU, show_progress=False)
    assert float(tiny * 2) != 0
