"""How much memory a streamed quantization run needs, from the model's shapes.

The pipeline holds at most (pipeline/layerwise.py, pipeline/sequential.py, algorithms/gptq.py):

  capture stage  vision tower + merger (model dtype) + captured hidden states; the embedding
                 table stays on disk, only the rows of calibration tokens are read
  layer stage    one decoder layer (model dtype)
                 + GPTQ's float32 copy of the largest stacked group (gate/up: 2*I x H) and
                   its uint8 codes
                 + two I x I float32 matrices (down_proj's Hessian and its Cholesky factor,
                   algorithms/gptq.py _damped_cholesky)
                 + activations: per token, hidden states in and out, the attention residual
                   (3 * H), o_proj's input (heads * head_dim, H except on Qwen3-VL 4B/32B)
                   and down_proj's input (I), in the model dtype
                 + Qwen3-VL's DeepStack features: per visual token, one hidden vector per
                   vision layer that feeds the decoder (counted as if every token were visual)

plus the Python/torch runtime (about 0.75 GB on CPU). lm_head, the final norm and every
other decoder layer are never in memory.

``model_config(family, size)`` gives the published shapes of every supported model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .arch import spec_for
from .pipeline.source import build_skeleton

RUNTIME_BYTES = int(0.75 * 2**30)  # torch + transformers + this package, imported (measured on CPU)


@dataclass(frozen=True)
class MemoryEstimate:
    capture_bytes: int
    layer_bytes: int

    @property
    def peak_bytes(self) -> int:
        return max(self.capture_bytes, self.layer_bytes)


def estimate(config, tokens: int, dtype_bytes: int = 2) -> MemoryEstimate:
    """Peak memory of ``quantize_checkpoint`` for a model config and calibration tokens."""
    spec = spec_for(config.model_type)
    model = build_skeleton(config, spec)  # meta tensors: shapes only
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    text = config.text_config
    hidden, inter = text.hidden_size, text.intermediate_size
    attention = text.num_attention_heads * (getattr(text, "head_dim", None) or hidden // text.num_attention_heads)
    deepstack = len(getattr(config.vision_config, "deepstack_visual_indexes", None) or ())
    activations = tokens * hidden * (2 + deepstack) * dtype_bytes
    capture = count(model.get_submodule(spec.visual)) * dtype_bytes
    layer = count(model.get_submodule(spec.layers_path)[0]) * dtype_bytes
    solve = 2 * inter * hidden * (4 + 1) + 2 * inter * inter * 4
    layer_activations = tokens * (3 * hidden + attention + inter + deepstack * hidden) * dtype_bytes
    return MemoryEstimate(RUNTIME_BYTES + capture + activations, RUNTIME_BYTES + layer + solve + layer_activations)


# Published shapes (config.json of the released -Instruct checkpoints): text (hidden,
# intermediate, layers, heads, KV heads, head_dim, vocab, tie) and vision tower.
_QWEN2_VL_VISION = dict(depth=32, embed_dim=1280, num_heads=16, mlp_ratio=4, patch_size=14, spatial_merge_size=2,
                        temporal_patch_size=2)
_QWEN2_5_VL_VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14,
                          spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                          fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2)
_QWEN3_VL_VISION = {
    "small": dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, patch_size=16,
                  spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304,
                  deepstack_visual_indexes=[5, 11, 17]),
    "large": dict(depth=27, hidden_size=1152, intermediate_size=4304, num_heads=16, patch_size=16,
                  spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304,
                  deepstack_visual_indexes=[8, 16, 24]),
}
SIZES = {
    ("qwen2_vl", "2B"): (1536, 8960, 28, 12, 2, 128, 151936, True),
    ("qwen2_vl", "7B"): (3584, 18944, 28, 28, 4, 128, 152064, False),
    ("qwen2_vl", "72B"): (8192, 29568, 80, 64, 8, 128, 152064, False),
    ("qwen2_5_vl", "3B"): (2048, 11008, 36, 16, 2, 128, 151936, True),
    ("qwen2_5_vl", "7B"): (3584, 18944, 28, 28, 4, 128, 152064, False),
    ("qwen2_5_vl", "32B"): (5120, 27648, 64, 40, 8, 128, 152064, False),
    ("qwen2_5_vl", "72B"): (8192, 29568, 80, 64, 8, 128, 152064, False),
    ("qwen3_vl", "2B"): (2048, 6144, 28, 16, 8, 128, 151936, True),
    ("qwen3_vl", "4B"): (2560, 9728, 36, 32, 8, 128, 151936, True),
    ("qwen3_vl", "8B"): (4096, 12288, 36, 32, 8, 128, 151936, False),
    ("qwen3_vl", "32B"): (5120, 25600, 64, 64, 8, 128, 151936, False),
}


def model_config(family: str, size: str):
    """The config of a released model (shapes only, for estimates without weights)."""
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig, Qwen3VLConfig

    hidden, inter, layers, heads, kv, head_dim, vocab, tie = SIZES[family, size]
    text = dict(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers, num_attention_heads=heads,
                num_key_value_heads=kv, vocab_size=vocab, tie_word_embeddings=tie)
    if family == "qwen2_vl":
        text["rope_scaling"] = {"type": "mrope", "mrope_section": [16, 24, 24]}
        return Qwen2VLConfig(text_config=text, vision_config=dict(_QWEN2_VL_VISION, hidden_size=hidden),
                             tie_word_embeddings=tie, dtype=torch.bfloat16)
    if family == "qwen2_5_vl":
        text["rope_scaling"] = {"type": "mrope", "mrope_section": [16, 24, 24]}
        return Qwen2_5_VLConfig(text_config=text, vision_config=dict(_QWEN2_5_VL_VISION, out_hidden_size=hidden),
                                tie_word_embeddings=tie, dtype=torch.bfloat16)
    text.update(head_dim=head_dim, rope_scaling={"rope_type": "default", "mrope_section": [24, 20, 20],
                                                 "mrope_interleaved": True})
    vision = dict(_QWEN3_VL_VISION["small" if hidden <= 2560 else "large"], out_hidden_size=hidden)
    return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=tie, dtype=torch.bfloat16)
