"""qwen2vl-quant gptq on a real (tiny, random-weight) Qwen2-VL directory: the checkpoint it
writes, what it leaves untouched, loading it back and generating with it."""

import hashlib
import json

import pytest
import torch
from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

from qwen2vl_quant.api import quantize
from qwen2vl_quant.arch import QWEN2_VL
from qwen2vl_quant.cli import main
from qwen2vl_quant.config import CalibrationConfig, GPTQConfig
from qwen2vl_quant.loading import load_quantized
from qwen2vl_quant.pipeline.checkpoint import CheckpointReader


def write_jsonl(path, conversations):
    path.write_text("".join(json.dumps(c) + "\n" for c in conversations))
    return path


def tree_digest(directory):
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def quantized(tiny_sharded_model_dir, calib_conversations, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gptq")
    calib = write_jsonl(tmp / "calib.jsonl", calib_conversations)
    out = tmp / "out"
    before = tree_digest(tiny_sharded_model_dir)
    code = main(["gptq", "--bits", "4", "--group-size", "32", "--desc-act", "--calib", str(calib),
                 "--max-shard-size", "150KB", "--quiet", str(tiny_sharded_model_dir), str(out)])
    assert code == 0
    assert tree_digest(tiny_sharded_model_dir) == before, "the input model was modified"
    return out, calib


def test_output_layout_and_config(quantized):
    out, _ = quantized
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and all((out / s).is_file() for s in shards)
    for shard in shards:
        assert (out / shard).stat().st_size < 150_000 + 64 * 1024  # cap + header, no tensor larger than the cap
    qc = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "gptq" and qc["bits"] == 4 and qc["group_size"] == 32
    # Act-order with static groups (the default with --desc-act): g_idx is the trivial one,
    # so the checkpoint says desc_act false, which vLLM serves; meta keeps the solve order.
    assert qc["desc_act"] is False and qc["meta"]["act_order"] is True and qc["static_groups"] is True
    assert qc["sym"] is True and qc["checkpoint_format"] == "gptq"
    reader = CheckpointReader(out, QWEN2_VL)
    g_idx = [reader.get(name) for name in reader.names() if name.endswith(".g_idx")]
    assert g_idx and all(torch.equal(g.long(), torch.arange(g.numel()) // 32) for g in g_idx)
    assert "block_name_to_quantize" not in qc
    for name in ("chat_template.jinja", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (out / name).is_file(), name
    assert AutoProcessor.from_pretrained(out).tokenizer is not None
    assert not list(out.parent.glob(".*partial")), "staging directory left behind"


def test_only_decoder_linears_are_quantized_and_the_rest_is_bit_identical(quantized, tiny_sharded_model_dir):
    out, _ = quantized
    source, result = CheckpointReader(tiny_sharded_model_dir, QWEN2_VL), CheckpointReader(out, QWEN2_VL)
    quantized_linears = set()
    for name in result.names():
        module = QWEN2_VL.module_name_for_key(name)
        if name.endswith((".qweight", ".qzeros", ".scales", ".g_idx")):
            assert QWEN2_VL.layer_index_of(module) is not None, name
            quantized_linears.add(name.rsplit(".", 1)[0])
            continue
        assert torch.equal(result.get(name), source.get(name)), name
        assert result.get(name).dtype == source.get(name).dtype
    layers = len({QWEN2_VL.layer_index_of(n) for n in source.names()} - {None})
    assert len(quantized_linears) == layers * len(QWEN2_VL.quantized_linears)
    assert not any(n.endswith(".weight") and n.rsplit(".", 1)[0] in quantized_linears for n in result.names())
    assert result.legacy_keys == source.legacy_keys


def test_loads_back_generates_and_matches_the_in_memory_model(quantized, tiny_sharded_model_dir):
    out, calib = quantized
    processor = AutoProcessor.from_pretrained(tiny_sharded_model_dir)
    in_memory = Qwen2VLForConditionalGeneration.from_pretrained(tiny_sharded_model_dir, dtype=torch.bfloat16).eval()
    quantize(in_memory, str(calib), GPTQConfig(bits=4, group_size=32, desc_act=True), processor=processor,
             device="cpu", show_progress=False)
    loaded = load_quantized(out)
    messages = [{"role": "user", "content": "Describe a red circle."}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], return_tensors="pt")
    with torch.inference_mode():
        torch.testing.assert_close(loaded(**inputs).logits, in_memory(**inputs).logits, rtol=0, atol=0)
        generated = loaded.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 8
    assert loaded.model.visual.blocks[0].attn.qkv.weight.dtype == torch.bfloat16


def test_report_is_written_and_covers_every_linear(quantized):
    out, _ = quantized
    report = json.loads((out / "quantization_report.json").read_text())
    assert report["method"] == "gptq"
    assert len(report["linears"]) == 2 * 7
    assert all(0 < r["rel_error"] < 1 and r["loss"] >= 0 for r in report["linears"])


def test_api_accepts_ready_processor_outputs(tiny_model_dir, calib_conversations):
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = Qwen2VLForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).eval()
    chats = [[{"role": "user", "content": "Count to three."}, {"role": "assistant", "content": "One, two, three."}],
             [{"role": "user", "content": "Hi"}]]
    text = processor.apply_chat_template(chats, tokenize=False)
    batch = processor(text=text, return_tensors="pt", padding=True)  # padded batch of two samples
    assert not batch["attention_mask"].all()
    report = quantize(model, [batch], GPTQConfig(bits=8, group_size=64), calibration=CalibrationConfig(),
                      device="cpu", show_progress=False)
    assert report.calibration.startswith("1 samples")
    assert len(report.linears) == 14
    assert type(model.model.language_model.layers[0].mlp.down_proj).__name__ == "GPTQLinear"
    assert type(model.model.visual.blocks[0].attn.qkv).__name__ == "Linear"
