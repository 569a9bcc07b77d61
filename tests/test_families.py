"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL: the same command, the same guarantees (issue 16).

Each family's random-weight test model (testing/tiny_families.py) goes through the capture
(replayed exactly, DeepStack included), GPTQ and AWQ from the command line, and the loaders."""

import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from qwen2vl_quant.arch import SPECS, spec_for
from qwen2vl_quant.calibration.batches import build_samples
from qwen2vl_quant.cli import main
from qwen2vl_quant.config import CalibrationConfig
from qwen2vl_quant.errors import ModelLoadError
from qwen2vl_quant.loading import load_quantized
from qwen2vl_quant.modules.quant_linear import QuantLinear
from qwen2vl_quant.pipeline.checkpoint import CheckpointReader
from qwen2vl_quant.pipeline.layerwise import capture_inputs
from qwen2vl_quant.pipeline.source import DirectorySource, ModelSource
from qwen2vl_quant.testing.sample_data import unbounded
from replay import reference_hidden, replay

CPU = torch.device("cpu")
FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]


def load(model_dir, dtype=torch.bfloat16):
    return AutoModelForImageTextToText.from_pretrained(model_dir, dtype=dtype).eval()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("source_kind", ["memory", "directory"])
def test_replayed_inputs_reproduce_every_familys_hidden_states(family, source_kind, family_model_dir,
                                                              calib_conversations):
    model_dir = family_model_dir(family)
    processor = AutoProcessor.from_pretrained(model_dir)
    samples, summary = build_samples(calib_conversations, processor, unbounded())
    assert summary.text_tokens and summary.image_tokens and summary.video_tokens  # text, image and video
    model = load(model_dir)
    source = ModelSource(model) if source_kind == "memory" else DirectorySource(model_dir)
    assert source.spec is SPECS[family]
    inputs = capture_inputs(source, samples, CPU, CPU, show_progress=False)
    layers = [source.layer(i) for i in range(source.num_layers)]
    replayed, reference = replay(layers, inputs), reference_hidden(model, samples)
    assert len(replayed) == len(reference) == len(samples)
    for got, want in zip(replayed, reference, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    visual = [i for i, s in enumerate(samples) if "pixel_values" in s.inputs or "pixel_values_videos" in s.inputs]
    if family == "qwen3_vl":
        # DeepStack was captured for every visual sample, and leaving it out changes them.
        assert all(inputs[i].deepstack is not None for i in visual)
        plain = replay(layers, inputs, deepstack=False)
        assert all(not torch.equal(plain[i], reference[i]) for i in visual)
    else:
        assert all(s.deepstack is None for s in inputs)


@pytest.mark.parametrize("model_type, expected", [
    ("qwen3_vl_moe", "fused 3-D tensors"),
    ("qwen2", "without a vision tower"),
    ("llama", "not supported"),
])
def test_unsupported_model_types_get_one_line(tmp_path, model_type, expected):
    model = tmp_path / model_type
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": model_type}))
    result = subprocess.run([sys.executable, "-m", "qwen2vl_quant.cli", "gptq", "--bits", "4", str(model),
                             str(tmp_path / "out")], capture_output=True, text=True)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert expected in lines[0] and "'qwen2_vl', 'qwen2_5_vl', 'qwen3_vl'" in lines[0]
    with pytest.raises(ModelLoadError, match="qwen2_5_vl"):
        spec_for(model_type)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_demo_model_of_a_family(family, tmp_path, capsys):
    out = tmp_path / family
    assert main(["demo-model", "--family", family, "--quiet", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["model_type"] == family
    assert type(AutoProcessor.from_pretrained(out)).__name__ == {"qwen2_5_vl": "Qwen2_5_VLProcessor",
                                                                 "qwen3_vl": "Qwen3VLProcessor"}[family]
    assert main(["demo-model", "--family", family, "--preset", "tiny", str(tmp_path / "x")]) == 2
    assert "no 'tiny' preset" in capsys.readouterr().err


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_the_builtin_calibration_set_works_for_every_family(family, family_model_dir):
    processor = AutoProcessor.from_pretrained(family_model_dir(family))
    samples, summary = build_samples(None, processor, CalibrationConfig(num_samples=None, max_pixels=28 * 28 * 64))
    assert summary.samples == 60 and not summary.skipped, summary.describe()
    assert summary.video_tokens > 0 and summary.image_tokens > 0


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_quantized_family_checkpoints_load_and_keep_the_vision_tower(family, method, family_model_dir,
                                                                     calib_conversations, tmp_path):
    model_dir = family_model_dir(family)
    calib = tmp_path / "calib.jsonl"
    calib.write_text("".join(json.dumps(c) + "\n" for c in calib_conversations))
    out = tmp_path / f"{family}-{method}"
    assert main([method, "--bits", "4", "--calib", str(calib), "--quiet", str(model_dir), str(out)]) == 0
    spec = SPECS[family]
    source, result = CheckpointReader(model_dir, spec), CheckpointReader(out, spec)
    assert result.legacy_keys == source.legacy_keys == (family == "qwen2_5_vl")  # the input's key style kept
    for name in source.names():
        if name.startswith(spec.visual + "."):
            assert torch.equal(result.get(name), source.get(name)), name  # the vision tower, bit for bit
    ours = load_quantized(out, dtype=torch.float32)
    assert type(ours).__name__ == type(load(model_dir)).__name__
    quantized = [m for m in ours.modules() if isinstance(m, QuantLinear)]
    assert len(quantized) == 7 * len(ours.model.language_model.layers)
    # ... and in transformers, through gptqmodel, computing what our loader computes.
    from transformers import AwqConfig, GPTQConfig

    backend = GPTQConfig(bits=4, backend="gptq_torch") if method == "gptq" else AwqConfig(bits=4, backend="torch_awq")
    theirs = AutoModelForImageTextToText.from_pretrained(out, device_map="cpu", dtype=torch.float32,
                                                         quantization_config=backend).eval()
    assert "gptqmodel" in type(theirs.model.language_model.layers[0].self_attn.q_proj).__module__
    processor = AutoProcessor.from_pretrained(out)
    samples, _ = build_samples(calib_conversations[1:2], processor, unbounded())
    with torch.inference_mode():
        got = theirs(**samples[0].inputs).logits.float()
        want = ours(**samples[0].inputs).logits.float()
    assert float((got - want).norm() / want.norm()) < 0.02  # float16 rounding in their kernels (test_interop)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_gptq_and_awq_beat_round_to_nearest_on_every_family(family, family_model_dir, calib_conversations,
                                                            tmp_path_factory):
    """As tests/test_quality.py for Qwen2-VL: held-out error of the final hidden states."""
    from qwen2vl_quant import AWQConfig, GPTQConfig, RTNConfig, quantize
    from qwen2vl_quant.testing.sample_data import make_test_images, sample_conversations

    model_dir = family_model_dir(family)
    processor = AutoProcessor.from_pretrained(model_dir)
    held_out_images = make_test_images(tmp_path_factory.mktemp(f"held_out_{family}"), n=4, seed=7)
    held_out, _ = build_samples(sample_conversations(held_out_images)[1:], processor, unbounded())

    def final_hidden(model):
        with torch.inference_mode():
            return [model(**s.inputs, output_hidden_states=True).hidden_states[-1].float() for s in held_out]

    reference = final_hidden(load(model_dir))
    errors = {}
    for name, config in (("RTN", RTNConfig(bits=4, group_size=128, sym=False)), ("GPTQ", GPTQConfig(bits=4)),
                         ("AWQ", AWQConfig(bits=4))):
        model = load(model_dir)
        quantize(model, calib_conversations, config, processor=processor, device="cpu", show_progress=False)
        got = final_hidden(model)
        errors[name] = (sum(float((g - w).pow(2).sum()) for g, w in zip(got, reference))
                        / sum(float(w.pow(2).sum()) for w in reference)) ** 0.5
    print(f"{family} int4 g128 held-out error: {errors}")
    assert errors["GPTQ"] < 0.85 * errors["RTN"] and errors["AWQ"] < 0.85 * errors["RTN"], errors


def _rewrite_checkpoint(model_dir, out, change):
    """A copy of ``model_dir`` whose single safetensors file is ``change(tensors)``."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(model_dir, out)
    (shard,) = out.glob("*.safetensors")
    save_file(change(load_file(shard)), str(shard), metadata={"format": "pt"})
    return out


def test_checkpoints_that_would_load_wrong_are_refused_before_any_work(family_model_dir, tmp_path):
    qwen3 = SPECS["qwen3_vl"]
    legacy = _rewrite_checkpoint(family_model_dir("qwen3_vl"), tmp_path / "legacy", lambda tensors: {
        qwen3.key_for_module_name(k, legacy=True): v for k, v in tensors.items()})
    extra = _rewrite_checkpoint(family_model_dir("qwen2_vl"), tmp_path / "extra", lambda tensors: {
        **tensors, "value_head.weight": torch.zeros(1, 4)})
    for model_dir, message in ((legacy, "older key style"), (extra, "does not have: value_head.weight")):
        with pytest.raises(ModelLoadError, match=message):
            DirectorySource(model_dir)
        result = subprocess.run([sys.executable, "-m", "qwen2vl_quant.cli", "gptq", "--bits", "4", str(model_dir),
                                 str(tmp_path / "out")], capture_output=True, text=True)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert message in result.stderr and not (tmp_path / "out").exists()
