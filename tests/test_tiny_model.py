"""The random-weight Qwen2-VL checkpoints every other test builds on load and run like real ones."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, AutoTokenizer, Qwen2VLForConditionalGeneration

from qwen2vl_quant.testing import tiny_model as tm
from qwen2vl_quant.testing.sample_data import make_test_images


def _load(model_dir):
    model, info = Qwen2VLForConditionalGeneration.from_pretrained(model_dir, output_loading_info=True)
    assert not any(info.values()), info  # no missing / unexpected / mismatched keys
    return model.eval()


def _open(uri: str) -> Image.Image:
    assert uri.startswith("file://")
    return Image.open(uri[len("file://"):]).convert("RGB")


def _inputs(processor, conversation, **kwargs):
    """Chat template + media, as qwen-vl-utils' process_vision_info feeds the processor."""
    images, videos = [], []
    for message in conversation:
        for item in message["content"] if isinstance(message["content"], list) else []:
            if item["type"] == "image":
                images.append(_open(item["image"]))
            elif item["type"] == "video":
                videos.append([_open(frame) for frame in item["video"]])
    text = processor.apply_chat_template(conversation, tokenize=False, **kwargs)
    return processor(text=[text], images=images or None, videos=videos or None, return_tensors="pt")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return _load(tiny_model_dir), AutoProcessor.from_pretrained(tiny_model_dir)


def test_directory_is_a_qwen2vl_checkpoint(tiny_model_dir, tiny):
    model, processor = tiny
    files = {p.name for p in Path(tiny_model_dir).iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "tokenizer_config.json", "processor_config.json", "chat_template.jinja"} <= files
    raw = json.loads((Path(tiny_model_dir) / "config.json").read_text())
    assert raw["model_type"] == "qwen2_vl" and raw["architectures"] == ["Qwen2VLForConditionalGeneration"]
    assert raw["tie_word_embeddings"] is False and raw["dtype"] == "bfloat16"

    cfg = model.config
    head_dim = cfg.text_config.hidden_size // cfg.text_config.num_attention_heads
    assert sum(cfg.text_config.rope_parameters["mrope_section"]) == head_dim // 2
    assert cfg.text_config.num_key_value_heads < cfg.text_config.num_attention_heads  # GQA
    assert cfg.vision_config.hidden_size == cfg.text_config.hidden_size
    assert model.dtype == torch.bfloat16

    assert type(processor).__name__ == "Qwen2VLProcessor"
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessor"
    assert type(processor.video_processor).__name__ == "Qwen2VLVideoProcessor"
    tok = processor.tokenizer
    auto_tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert type(tok).__name__ == type(auto_tok).__name__ == "Qwen2Tokenizer"
    assert len(tok) <= cfg.text_config.vocab_size
    assert (tok.eos_token, tok.pad_token) == ("<|im_end|>", "<|endoftext|>")
    ids = tok.convert_tokens_to_ids
    assert cfg.image_token_id == ids("<|image_pad|>") == processor.image_token_id
    assert cfg.video_token_id == ids("<|video_pad|>") == processor.video_token_id
    assert cfg.vision_start_token_id == ids("<|vision_start|>")
    assert cfg.vision_end_token_id == ids("<|vision_end|>")
    assert model.generation_config.eos_token_id[0] == ids("<|im_end|>")
    text = "A red circle, 42 dogs; why? Héllo!"
    assert tok.decode(tok(text)["input_ids"]) == text  # byte-level: lossless on any text


def _kinds(conversation):
    return [item["type"] for m in conversation if isinstance(m["content"], list) for item in m["content"]]


def test_chat_template_and_processor(tiny, calib_conversations):
    _, processor = tiny
    text_only, single = calib_conversations[0], calib_conversations[1]
    rendered = processor.apply_chat_template(text_only, tokenize=False)
    system = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    assert rendered.startswith(system + "<|im_start|>user\nTell me who you are.<|im_end|>\n")
    assert rendered.endswith("<|im_start|>assistant\n" + text_only[-1]["content"] + "<|im_end|>\n")
    # Without a system turn the template inserts the default one.
    prompt = processor.apply_chat_template(single[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.startswith(system)
    assert "<|vision_start|><|image_pad|><|vision_end|>Describe this image.<|im_end|>\n" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")

    two_images = next(c for c in calib_conversations if _kinds(c).count("image") == 2)
    video = next(c for c in calib_conversations if "video" in _kinds(c))
    for conv, kind in ((single, "image"), (two_images, "image"), (video, "video")):
        inputs = _inputs(processor, conv)
        grid = inputs[f"{kind}_grid_thw"]
        pixels = inputs["pixel_values" if kind == "image" else "pixel_values_videos"]
        assert pixels.shape == (grid.prod(-1).sum(), 3 * 2 * 14 * 14)
        pad_id = processor.tokenizer.convert_tokens_to_ids(f"<|{kind}_pad|>")
        n_pad = (inputs["input_ids"] == pad_id).sum()
        assert n_pad == grid.prod(-1).sum() // 4 > 0  # one token per 2x2 merged patch
        assert n_pad <= 16 * len(grid) * (2 if kind == "video" else 1)  # tiny preset's small max_pixels


def test_forward_and_generate(tiny, calib_conversations):
    model, processor = tiny
    with torch.no_grad():
        for conv in calib_conversations:
            logits = model(**_inputs(processor, conv)).logits
            assert torch.isfinite(logits).all() and logits.float().std() > 0.1
    inputs = _inputs(processor, calib_conversations[1][:1], add_generation_prompt=True)
    out = model.generate(**inputs, max_new_tokens=4, min_new_tokens=4)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 4


def test_sharded_variant_loads_identically(tiny, tiny_sharded_model_dir, calib_conversations):
    model, processor = tiny
    index = json.loads((Path(tiny_sharded_model_dir) / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert not (Path(tiny_sharded_model_dir) / "model.safetensors").exists()
    sharded = _load(tiny_sharded_model_dir)
    inputs = _inputs(processor, calib_conversations[-2])
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, sharded(**inputs).logits)


def _tensors(model_dir):
    from safetensors.torch import load_file

    out = {}
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        out.update(load_file(f))
    return out


def test_build_is_deterministic(tiny_model_dir, tmp_path):
    rng = torch.get_rng_state()
    again = tm.build_tiny_qwen2vl(tmp_path / "again", preset="tiny")
    assert torch.equal(rng, torch.get_rng_state())  # the caller's RNG is left alone
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
                 "processor_config.json", "chat_template.jinja"):
        assert (again / name).read_bytes() == (Path(tiny_model_dir) / name).read_bytes(), name
    other = tm.build_tiny_qwen2vl(tmp_path / "seed1", preset="tiny", seed=1)
    assert (other / "model.safetensors").read_bytes() != (again / "model.safetensors").read_bytes()


def test_streamed_writer_matches_save_pretrained(tiny_sharded_model_dir, tmp_path):
    # The 2b-shapes preset writes its shards itself; check that path on the tiny shapes.
    tm._write_streamed(tmp_path, tm.tiny_config("tiny"), tm.PRESETS["tiny"], 0,
                       tm.outlier_spec("tiny", 0), torch.bfloat16, "200KB")
    ours, theirs = _tensors(tmp_path), _tensors(tiny_sharded_model_dir)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {p.name for p in tmp_path.glob("*.safetensors")}


def _input_maxabs(model, processor, conversations, module):
    """Per-input-channel max |x| of ``module`` in every decoder layer."""
    stats = []
    hooks = [layer.get_submodule(module).register_forward_pre_hook(
        lambda _, args: stats.append(args[0].float().flatten(0, -2).abs().amax(0)))
        for layer in model.model.language_model.layers]
    with torch.no_grad():
        for conv in conversations:
            model(**_inputs(processor, conv))
    for h in hooks:
        h.remove()
    return torch.stack(stats)


def test_outlier_channels_reach_the_linears(tiny, calib_conversations, tmp_path):
    model, processor = tiny
    spec = tm.outlier_spec("tiny", seed=0)
    for module, key in (("self_attn.q_proj", "hidden"), ("mlp.down_proj", "intermediate")):
        maxabs = _input_maxabs(model, processor, calib_conversations[:3], module)
        channels = list(spec[key])
        normal = torch.ones(maxabs.shape[1], dtype=torch.bool)
        normal[channels] = False
        ratio = maxabs[:, channels] / maxabs[:, normal].median(dim=1).values[:, None]
        assert (maxabs[:, normal].amax(dim=1) < 0.5 * maxabs[:, channels].amax(dim=1)).all(), module
        if key == "hidden":  # after RMSNorm: every token, every planted channel
            assert (ratio > 8).all(), (module, ratio)
        else:  # through silu(gate), which mutes some channels for many tokens, as in real LLMs
            assert (ratio.median(dim=1).values > 8).all(), (module, ratio)
            assert (ratio > 4).float().mean() >= 0.5, (module, ratio)

    plain_dir = tm.build_tiny_qwen2vl(tmp_path / "plain", preset="tiny", outlier_channels=False)
    maxabs = _input_maxabs(_load(plain_dir), processor, calib_conversations[:3], "self_attn.q_proj")
    assert (maxabs.amax(dim=1) < 4 * maxabs.median(dim=1).values).all()


def test_small_preset(small_model_dir, calib_conversations):
    model = _load(small_model_dir)
    linears = [m for n, m in model.model.language_model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 7 * model.config.text_config.num_hidden_layers
    assert all(m.in_features % 128 == 0 for m in linears)  # the default group size works
    processor = AutoProcessor.from_pretrained(small_model_dir)
    with torch.no_grad():
        assert torch.isfinite(model(**_inputs(processor, calib_conversations[1])).logits).all()


def test_2b_shapes_config_matches_qwen2_vl_2b():
    config = tm.tiny_config("2b-shapes")
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads,
            text.intermediate_size, text.vocab_size) == (1536, 28, 12, 2, 8960, 151936)
    assert (vision.depth, vision.embed_dim, vision.num_heads, vision.mlp_ratio) == (32, 1280, 16, 4)
    assert text.rope_parameters["mrope_section"] == [16, 24, 24]
    assert text.rope_parameters["rope_theta"] == 1e6
    with torch.device("meta"):
        model = Qwen2VLForConditionalGeneration(config)
    vision_params = sum(p.numel() for p in model.model.visual.parameters())
    total = sum(p.numel() for p in model.parameters())  # lm_head is tied, as in the real 2B
    assert abs(vision_params / 1e9 - 0.665) < 0.01
    assert abs((total - vision_params) / 1e9 - 1.544) < 0.01
    assert abs(total / 1e9 - 2.21) < 0.01


def test_test_images_and_conversations(test_images, calib_conversations, tmp_path):
    again = make_test_images(tmp_path, n=len(test_images), seed=0)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in test_images]
    for p in test_images:
        with Image.open(p) as img:
            assert 56 <= min(img.size) and max(img.size) <= 112

    assert all(conv[-1]["role"] == "assistant" and isinstance(conv[-1]["content"], str)
               for conv in calib_conversations)
    text_only = calib_conversations[0]
    assert text_only[0]["role"] == "system" and all(isinstance(m["content"], str) for m in text_only)
    items = [item for conv in calib_conversations for m in conv
             if isinstance(m["content"], list) for item in m["content"]]
    images = [i["image"] for i in items if i["type"] == "image"]
    videos = [i["video"] for i in items if i["type"] == "video"]
    assert len(images) == len(test_images) + 2 and len(videos) == 1 and len(videos[0]) == 4
    assert all(Path(uri[len("file://"):]).is_absolute() and Path(uri[len("file://"):]).exists()
               for uri in images + videos[0])
