"""Offline random-weight Qwen2.5-VL and Qwen3-VL (dense) models, next to tiny_model.py's Qwen2-VL.

Each family gets its own config, processor (image and video processors of its own kind),
tokenizer and chat template, all written by transformers' ``save_pretrained`` as real
checkpoints are. The shapes are those of tiny_model's "small" preset (hidden 256, 4 layers,
4 heads, 2 KV heads, intermediate 512; every K a multiple of 128), with a 4-block vision
tower of width 64. Reused from tiny_model: the offline tokenizer (plus each family's added
tokens after the special ones, as in the real vocabularies), the deterministic
initialisation with planted outlier channels, and the Qwen2-VL chat template, which
Qwen2.5-VL-Instruct ships unchanged.

    build_tiny_model("/tmp/tiny-qwen3-vl", family="qwen3_vl")
"""

from __future__ import annotations

from pathlib import Path

import torch

from .tiny_model import (
    CHAT_TEMPLATE,
    PRESETS,
    SPECIAL_IDS,
    Preset,
    _generation_config,
    _init_tensor,
    build_tiny_qwen2vl,
    build_tokenizer,
    outlier_spec,
)

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")

# Added (non-special) tokens that follow <|video_pad|> in the real tokenizers, in order:
# Qwen2.5 has ids 151657..151664, Qwen3 adds 151665..151668.
QWEN2_5_EXTRA_TOKENS = ("<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                        "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>")
QWEN3_EXTRA_TOKENS = QWEN2_5_EXTRA_TOKENS + ("<tool_response>", "</tool_response>", "<think>", "</think>")
VOCAB_SIZE = 1152  # 1000 BPE + 14 specials + 12 added tokens = 1026 used, rounded up to a multiple of 128

# Qwen3-VL-Instruct's chat template (chat_template.json of Qwen/Qwen3-VL-*-Instruct): a tools
# block, no default system message; transformers ships no copy of it.
QWEN3_VL_CHAT_TEMPLATE = (Path(__file__).with_name("qwen3_vl_chat_template.jinja")).read_text()

# The "small" preset's decoder with a vision tower deep enough for Qwen3-VL's DeepStack
# (features from vision blocks 1, 2 and 3).
SHAPES = Preset(hidden=256, layers=4, heads=4, kv_heads=2, intermediate=512, vision_depth=4, vision_dim=64,
                vision_heads=2, mrope_section=(8, 12, 12), vocab_size=VOCAB_SIZE, tie_word_embeddings=False,
                image_pixels=(56 * 56, 28 * 28 * 16), video_pixels=(56 * 56, 28 * 28 * 16))
VISION_INTERMEDIATE = 128


def build_tiny_model(out_dir, *, family: str = "qwen2_vl", preset: str = "small", seed: int = 0,
                     outlier_channels: bool = True) -> Path:
    """A random-weight model of ``family`` (Qwen2-VL: any tiny_model preset; the others: the
    "small" shapes only)."""
    if family == "qwen2_vl":
        return build_tiny_qwen2vl(out_dir, preset=preset, seed=seed, outlier_channels=outlier_channels)
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    if preset != "small":
        raise ValueError(f"the {family} test model comes in the 'small' preset only, not {preset!r}")
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen3VLForConditionalGeneration

    if family == "qwen2_5_vl":
        return _build(out_dir, Qwen2_5_VLForConditionalGeneration, qwen2_5_vl_config(), qwen2_5_vl_processor(),
                      _generation_config(), seed, outlier_channels)
    return _build(out_dir, Qwen3VLForConditionalGeneration, qwen3_vl_config(), qwen3_vl_processor(),
                  _qwen3_generation_config(), seed, outlier_channels)


def family_tokenizer(extra_tokens: tuple[str, ...]):
    """tiny_model's tokenizer plus the family's added tokens right after the special ones."""
    from tokenizers import AddedToken

    tokenizer = build_tokenizer()
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in extra_tokens])
    first = max(SPECIAL_IDS.values()) + 1
    if tokenizer.convert_tokens_to_ids(list(extra_tokens)) != list(range(first, first + len(extra_tokens))):
        raise RuntimeError("the added tokens do not follow the special tokens")
    return tokenizer


def _token_ids() -> dict:
    return dict(image_token_id=SPECIAL_IDS["<|image_pad|>"], video_token_id=SPECIAL_IDS["<|video_pad|>"],
                vision_start_token_id=SPECIAL_IDS["<|vision_start|>"],
                vision_end_token_id=SPECIAL_IDS["<|vision_end|>"])


def _text_config() -> dict:
    s = SHAPES
    return dict(vocab_size=s.vocab_size, hidden_size=s.hidden, intermediate_size=s.intermediate,
                num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.kv_heads,
                hidden_act="silu", rms_norm_eps=1e-6, bos_token_id=SPECIAL_IDS["<|endoftext|>"],
                eos_token_id=SPECIAL_IDS["<|im_end|>"], tie_word_embeddings=False)


def qwen2_5_vl_config():
    """Qwen2_5_VLConfig laid out as the published config.json files: M-RoPE, 2 tokens per
    second of video, window attention with full-attention blocks."""
    from transformers import Qwen2_5_VLConfig

    text = dict(_text_config(), rope_scaling={"type": "mrope", "mrope_section": list(SHAPES.mrope_section)},
                rope_theta=1e6, max_position_embeddings=128000, sliding_window=32768,
                max_window_layers=SHAPES.layers, use_sliding_window=False)
    # Real: depth 32, hidden 1280, intermediate 3420, 16 heads, window 112, full blocks 7/15/23/31.
    # A window of 56 px is 2x2 merged tokens, so a 112-px test picture has 4 windows.
    vision = dict(depth=SHAPES.vision_depth, hidden_size=SHAPES.vision_dim, intermediate_size=VISION_INTERMEDIATE,
                  num_heads=SHAPES.vision_heads, out_hidden_size=SHAPES.hidden, hidden_act="silu", in_channels=3,
                  in_chans=3, patch_size=14, spatial_patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                  window_size=56, fullatt_block_indexes=[1, 3], tokens_per_second=2)
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False,
                            dtype=torch.bfloat16, **_token_ids())


def qwen3_vl_config():
    """Qwen3VLConfig laid out as the published config.json files: interleaved M-RoPE, head_dim
    set apart from hidden / heads (heads x head_dim = 384 != 256, as on Qwen3-VL-4B and 32B),
    DeepStack from three vision blocks, lm_head tied to the embeddings (2B, 4B)."""
    from transformers import Qwen3VLConfig

    # Tied lm_head, as on Qwen3-VL-2B and 4B (their config.json sets it at both levels).
    text = dict(_text_config(), tie_word_embeddings=True, head_dim=96, attention_bias=False, attention_dropout=0.0,
                rope_scaling={"rope_type": "default", "mrope_section": [18, 15, 15], "mrope_interleaved": True},
                rope_theta=5_000_000, max_position_embeddings=262144)
    vision = dict(depth=SHAPES.vision_depth, hidden_size=SHAPES.vision_dim, intermediate_size=VISION_INTERMEDIATE,
                  num_heads=SHAPES.vision_heads, out_hidden_size=SHAPES.hidden, hidden_act="gelu_pytorch_tanh",
                  in_channels=3, patch_size=16, spatial_merge_size=2, temporal_patch_size=2,
                  num_position_embeddings=64, deepstack_visual_indexes=[1, 2, 3])
    return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True,
                         dtype=torch.bfloat16, **_token_ids())


def qwen2_5_vl_processor():
    """Qwen2_5_VLProcessor: Qwen2VLImageProcessor (patch 14) and Qwen2VLVideoProcessor."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = {"shortest_edge": SHAPES.image_pixels[0], "longest_edge": SHAPES.image_pixels[1]}
    return Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(size=size),
                               video_processor=Qwen2VLVideoProcessor(size=size, cap_pixels_per_frame=True),
                               tokenizer=family_tokenizer(QWEN2_5_EXTRA_TOKENS), chat_template=CHAT_TEMPLATE)


def qwen3_vl_processor():
    """Qwen3VLProcessor: Qwen2VLImageProcessor with patch 16 and mean/std 0.5, and
    Qwen3VLVideoProcessor (patch 16; writes "<t seconds>" before each temporal patch)."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    half = [0.5, 0.5, 0.5]
    common = dict(patch_size=16, temporal_patch_size=2, merge_size=2, image_mean=half, image_std=half)
    image = Qwen2VLImageProcessor(size={"shortest_edge": 32 * 32 * 4, "longest_edge": 32 * 32 * 16}, **common)
    video = Qwen3VLVideoProcessor(size={"shortest_edge": 32 * 32 * 4, "longest_edge": 32 * 32 * 64},
                                  cap_pixels_per_frame=True, **common)
    return Qwen3VLProcessor(image_processor=image, video_processor=video,
                            tokenizer=family_tokenizer(QWEN3_EXTRA_TOKENS), chat_template=QWEN3_VL_CHAT_TEMPLATE)


def _qwen3_generation_config():
    from transformers import GenerationConfig

    # Qwen3-VL-Instruct's generation_config.json (sampling: top_k 20, top_p 0.8, T 0.7), our ids.
    eod, eos = SPECIAL_IDS["<|endoftext|>"], SPECIAL_IDS["<|im_end|>"]
    return GenerationConfig(bos_token_id=eod, pad_token_id=eod, eos_token_id=[eos, eod], do_sample=True,
                            top_k=20, top_p=0.8, temperature=0.7, repetition_penalty=1.0)


def _build(out_dir, model_class, config, processor, generation_config, seed: int, outlier_channels: bool) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("model*.safetensors*"):
        stale.unlink()
    # The outlier channels of the "small" preset: the same hidden and intermediate widths.
    spec = outlier_spec("small", seed) if outlier_channels else None
    assert (PRESETS["small"].hidden, PRESETS["small"].intermediate) == (SHAPES.hidden, SHAPES.intermediate)
    with torch.random.fork_rng(devices=[]):  # its default init must not move the caller's RNG
        model = model_class(config).to(torch.bfloat16)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(_init_tensor(name, param.shape, SHAPES, seed, spec))
    model.save_pretrained(out)
    generation_config.save_pretrained(out)
    processor.save_pretrained(out)
    return out
