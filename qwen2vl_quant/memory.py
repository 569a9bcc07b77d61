"""How much memory a streamed quantization run needs, from the model's shapes.

The pipeline holds at most (pipeline/layerwise.py, pipeline/sequential.py, algorithms/gptq.py):

  capture stage  vision tower + merger (model dtype) + captured hidden states; the embedding
                 table stays on disk, only the rows of calibration tokens are read
  layer stage    one decoder layer (model dtype)
                 + GPTQ's float32 copy of the largest stacked group (gate/up: 2*I x H) and
                   its uint8 codes
                 + two I x I float32 matrices (down_proj's Hessian and its Cholesky factor,
                   algorithms/gptq.py _damped_cholesky)
                 + activations: per token, hidden states in and out, the attention residual,
                   o_proj's input (4 * H) and down_proj's input (I), in the model dtype

plus the Python/torch runtime (about 0.75 GB on CPU). lm_head, the final norm and every
other decoder layer are never in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .arch import QWEN2_VL
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
    """Peak memory of ``quantize_checkpoint`` for a Qwen2VLConfig and calibration tokens."""
    model = build_skeleton(config)  # meta tensors: shapes only
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    text = config.text_config
    hidden, inter = text.hidden_size, text.intermediate_size
    activations = tokens * hidden * 2 * dtype_bytes
    capture = count(model.model.visual) * dtype_bytes
    layer = count(model.get_submodule(QWEN2_VL.layers_path)[0]) * dtype_bytes
    solve = 2 * inter * hidden * (4 + 1) + 2 * inter * inter * 4
    layer_activations = tokens * (4 * hidden + inter) * dtype_bytes
    return MemoryEstimate(RUNTIME_BYTES + capture + activations, RUNTIME_BYTES + layer + solve + layer_activations)


def qwen2vl_config(size: str):
    """The published shapes of Qwen2-VL-2B/7B/72B-Instruct (for estimates without weights)."""
    from transformers import Qwen2VLConfig

    shapes = {
        "2B": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                   num_key_value_heads=2, tie_word_embeddings=True),
        "7B": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                   num_key_value_heads=4, tie_word_embeddings=False),
        "72B": dict(hidden_size=8192, intermediate_size=29568, num_hidden_layers=80, num_attention_heads=64,
                    num_key_value_heads=8, tie_word_embeddings=False),
    }[size]
    tie = shapes.pop("tie_word_embeddings")
    text = dict(vocab_size=151936, rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}, **shapes)
    vision = dict(depth=32, embed_dim=1280, num_heads=16, mlp_ratio=4, hidden_size=shapes["hidden_size"],
                  patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    return Qwen2VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=tie, dtype=torch.bfloat16)
