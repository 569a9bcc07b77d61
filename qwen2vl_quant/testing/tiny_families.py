"""Offline random-weight Qwen2.5-VL and Qwen3-VL (dense) models, next to tiny_model.py's Qwen2-VL.

Each family gets its own config, processor (image and video processors of its own kind),
tokenizer and chat template, all written by transformers' ``save_pretrained`` as real
checkpoints are. Two presets:

- "small" (the default): tiny_model's "small" decoder (hidden 256, 4 layers, 4 heads, 2 KV
  heads, intermediate 512; every K a multiple of 128), with a 4-block vision tower of width 64.
- "vllm": tiny_model's "vllm" decoder for the vLLM interop tier (tests/vllm): hidden 512,
  2 layers, head_dim 128, intermediate 1152 = 9 x 128 (so that --tensor-parallel 2 and 4
  really pad), every K and every output slice a multiple of 128 up to 4-way tensor
  parallelism; a 2-block vision tower of width 256 with 8 heads (vLLM shards it too).
  Qwen3-VL gets 8 heads of 128 (1024 != hidden 512, as on Qwen3-VL-4B and 32B) and
  DeepStack from both vision blocks.

Reused from tiny_model: the offline tokenizer (plus each family's added
tokens after the special ones, as in the real vocabularies), the deterministic
initialisation with planted outlier channels, and the Qwen2-VL chat template, which
Qwen2.5-VL-Instruct ships unchanged.

    build_tiny_model("/tmp/tiny-qwen3-vl", family="qwen3_vl")
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class FamilyShapes:
    """What the two families' configs need beyond a tiny_model ``Preset``."""

    vision_intermediate: int
    qwen2_5_window: int  # Qwen2.5-VL window attention, in pixels
    qwen2_5_fullatt: tuple[int, ...]  # its full-attention vision blocks
    qwen3_heads: int  # Qwen3-VL's attention heads and head_dim (heads x head_dim != hidden)
    qwen3_head_dim: int
    qwen3_mrope_section: tuple[int, int, int]  # sums to head_dim / 2
    qwen3_deepstack: tuple[int, ...]  # vision blocks whose features DeepStack adds
    qwen3_position_embeddings: int  # a square: the learned grid of vision positions


# "vllm": tiny_model's "vllm" decoder (same hidden and intermediate widths, hence the same
# planted outlier channels), its 2-block vision tower of width 256 with 8 heads.
VLLM_SHAPES = Preset(hidden=512, layers=2, heads=4, kv_heads=2, intermediate=1152, vision_depth=2, vision_dim=256,
                     vision_heads=8, mrope_section=(16, 24, 24), vocab_size=VOCAB_SIZE, tie_word_embeddings=False,
                     image_pixels=(56 * 56, 28 * 28 * 16), video_pixels=(56 * 56, 28 * 28 * 16))
# name -> (decoder and vision widths, family extras)
FAMILY_PRESETS = {
    "small": (SHAPES, FamilyShapes(vision_intermediate=VISION_INTERMEDIATE, qwen2_5_window=56, qwen2_5_fullatt=(1, 3),
                                   qwen3_heads=SHAPES.heads, qwen3_head_dim=96, qwen3_mrope_section=(18, 15, 15),
                                   qwen3_deepstack=(1, 2, 3), qwen3_position_embeddings=64)),
    # Vision MLP widths divisible by 4 (vLLM splits them over the GPUs too); Qwen2.5-VL's real
    # 112-px window; Qwen3-VL's real head_dim 128 and M-RoPE sections, 8 x 128 = 1024 != 512.
    "vllm": (VLLM_SHAPES, FamilyShapes(vision_intermediate=512, qwen2_5_window=112, qwen2_5_fullatt=(1,),
                                       qwen3_heads=8, qwen3_head_dim=128, qwen3_mrope_section=(24, 20, 20),
                                       qwen3_deepstack=(0, 1), qwen3_position_embeddings=64)),
}


def build_tiny_model(out_dir, *, family: str = "qwen2_vl", preset: str = "small", seed: int = 0,
                     outlier_channels: bool = True) -> Path:
    """A random-weight model of ``family`` (Qwen2-VL: any tiny_model preset; the others:
    "small" or "vllm", see the module docstring)."""
    if family == "qwen2_vl":
        return build_tiny_qwen2vl(out_dir, preset=preset, seed=seed, outlier_channels=outlier_channels)
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    if preset not in FAMILY_PRESETS:
        raise ValueError(f"the {family} test model comes in the {' or '.join(map(repr, FAMILY_PRESETS))} "
                         f"preset only, not {preset!r}")
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen3VLForConditionalGeneration

    if family == "qwen2_5_vl":
        return _build(out_dir, Qwen2_5_VLForConditionalGeneration, qwen2_5_vl_config(preset), qwen2_5_vl_processor(),
                      _generation_config(), seed, outlier_channels, preset)
    return _build(out_dir, Qwen3VLForConditionalGeneration, qwen3_vl_config(preset), qwen3_vl_processor(),
                  _qwen3_generation_config(), seed, outlier_channels, preset)


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


def _text_config(s: Preset = SHAPES) -> dict:
    return dict(vocab_size=s.vocab_size, hidden_size=s.hidden, intermediate_size=s.intermediate,
                num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.kv_heads,
                hidden_act="silu", rms_norm_eps=1e-6, bos_token_id=SPECIAL_IDS["<|endoftext|>"],
                eos_token_id=SPECIAL_IDS["<|im_end|>"], tie_word_embeddings=False)


def qwen2_5_vl_config(preset: str = "small"):
    """Qwen2_5_VLConfig laid out as the published config.json files: M-RoPE, 2 tokens per
    second of video, window attention with full-attention blocks."""
    from transformers import Qwen2_5_VLConfig

    shapes, extra = FAMILY_PRESETS[preset]
    text = dict(_text_config(shapes), rope_scaling={"type": "mrope", "mrope_section": list(shapes.mrope_section)},
                rope_theta=1e6, max_position_embeddings=128000, sliding_window=32768,
                max_window_layers=shapes.layers, use_sliding_window=False)
    # Real: depth 32, hidden 1280, intermediate 3420, 16 heads, window 112, full blocks 7/15/23/31.
    # ("small") A window of 56 px is 2x2 merged tokens, so a 112-px test picture has 4 windows.
    vision = dict(depth=shapes.vision_depth, hidden_size=shapes.vision_dim, intermediate_size=extra.vision_intermediate,
                  num_heads=shapes.vision_heads, out_hidden_size=shapes.hidden, hidden_act="silu", in_channels=3,
                  in_chans=3, patch_size=14, spatial_patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                  window_size=extra.qwen2_5_window, fullatt_block_indexes=list(extra.qwen2_5_fullatt),
                  tokens_per_second=2)
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False,
                            dtype=torch.bfloat16, **_token_ids())


def qwen3_vl_config(preset: str = "small"):
    """Qwen3VLConfig laid out as the published config.json files: interleaved M-RoPE, head_dim
    set apart from hidden / heads (heads x head_dim = 384 != 256 for "small", 1024 != 512
    for "vllm", as on Qwen3-VL-4B and 32B), DeepStack from several vision blocks, lm_head
    tied to the embeddings (2B, 4B)."""
    from transformers import Qwen3VLConfig

    shapes, extra = FAMILY_PRESETS[preset]
    # Tied lm_head, as on Qwen3-VL-2B and 4B (their config.json sets it at both levels).
    text = dict(_text_config(shapes), tie_word_embeddings=True, head_dim=extra.qwen3_head_dim, attention_bias=False,
                attention_dropout=0.0,
                rope_scaling={"rope_type": "default", "mrope_section": list(extra.qwen3_mrope_section),
                              "mrope_interleaved": True},
                rope_theta=5_000_000, max_position_embeddings=262144)
    text["num_attention_heads"] = extra.qwen3_heads
    vision = dict(depth=shapes.vision_depth, hidden_size=shapes.vision_dim, intermediate_size=extra.vision_intermediate,
                  num_heads=shapes.vision_heads, out_hidden_size=shapes.hidden, hidden_act="gelu_pytorch_tanh",
                  in_channels=3, patch_size=16, spatial_merge_size=2, temporal_patch_size=2,
                  num_position_embeddings=extra.qwen3_position_embeddings,
                  deepstack_visual_indexes=list(extra.qwen3_deepstack))
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


def _build(out_dir, model_class, config, processor, generation_config, seed: int, outlier_channels: bool,
           preset: str = "small") -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("model*.safetensors*"):
        stale.unlink()
    shapes, _ = FAMILY_PRESETS[preset]
    # The outlier channels of tiny_model's preset of the same name: the same hidden and
    # intermediate widths.
    spec = outlier_spec(preset, seed) if outlier_channels else None
    assert (PRESETS[preset].hidden, PRESETS[preset].intermediate) == (shapes.hidden, shapes.intermediate)
    with torch.random.fork_rng(devices=[]):  # its default init must not move the caller's RNG
        model = model_class(config).to(torch.bfloat16)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(_init_tensor(name, param.shape, shapes, seed, spec))
    model.save_pretrained(out)
    generation_config.save_pretrained(out)
    processor.save_pretrained(out)
    return out
