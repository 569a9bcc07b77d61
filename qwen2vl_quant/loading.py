"""Loading our quantized checkpoints back without any third-party quantization library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

from .arch import QWEN2_VL
from .errors import ModelLoadError
from .modules.quant_linear import AWQLinear, GPTQLinear, QuantLinear
from .pipeline.checkpoint import CheckpointReader
from .pipeline.source import build_skeleton, rebuild_meta_buffers


def load_quantized(path: str | Path, device: str | torch.device = "cpu",
                   dtype: torch.dtype | None = None) -> Qwen2VLForConditionalGeneration:
    """A quantized Qwen2-VL checkpoint written by qwen2vl-quant, ready for ``generate``.

    dtype: compute dtype of the model (default: the checkpoint's, BF16 for Qwen2-VL).
    """
    path = Path(path)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(f"{path} has no config.json")
    qconfig = json.loads(config_path.read_text()).get("quantization_config")
    if not qconfig:
        raise ModelLoadError(f"{path} is not a quantized checkpoint (no quantization_config in config.json)")
    config = Qwen2VLConfig.from_pretrained(path)
    # Build a plain model: transformers would otherwise route a quantization_config to its
    # own (optional) GPTQ/AWQ integrations.
    config.quantization_config = None
    del config.quantization_config
    model = build_skeleton(config)
    dtype = dtype or _dtype(config)
    _swap_linears(model, qconfig, dtype)
    reader = CheckpointReader(path)
    try:
        state = {name: reader.get(name) for name in reader.names()}
    finally:
        reader.close()
    if config.tie_word_embeddings:
        state.setdefault("lm_head.weight", state["model.language_model.embed_tokens.weight"])
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        raise ModelLoadError(f"{path}: checkpoint does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.language_model.embed_tokens.weight
    rebuild_meta_buffers(model)
    model.config.quantization_config = qconfig
    # Float tensors (vision tower, norms, embeddings) follow the compute dtype; packed
    # integer buffers and fp16 scales are left as stored.
    for module in model.modules():
        if not isinstance(module, QuantLinear):
            for name, param in list(module.named_parameters(recurse=False)):
                if param.dtype != dtype:
                    setattr(module, name, torch.nn.Parameter(param.data.to(dtype), requires_grad=False))
    return model.to(device).eval()


def _dtype(config: Qwen2VLConfig) -> torch.dtype:
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or torch.bfloat16
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def _swap_linears(model: nn.Module, qconfig: dict[str, Any], dtype: torch.dtype) -> None:
    method = qconfig.get("quant_method")
    module_class = {"gptq": GPTQLinear, "awq": AWQLinear}.get(method)
    if module_class is None:
        raise ModelLoadError(f"unsupported quant_method {method!r}")
    if method == "gptq" and qconfig.get("checkpoint_format", "gptq") != "gptq":
        raise ModelLoadError(f"unsupported GPTQ checkpoint_format {qconfig['checkpoint_format']!r}")
    layers = model.get_submodule(QWEN2_VL.layers_path)
    for layer in layers:
        for name in QWEN2_VL.quantized_linears:
            linear = layer.get_submodule(name)
            with torch.device("meta"):
                module = module_class(linear.in_features, linear.out_features, bits=qconfig["bits"],
                                      group_size=qconfig["group_size"], bias=linear.bias is not None, dtype=dtype)
            parent, _, child = name.rpartition(".")
            setattr(layer.get_submodule(parent), child, module)
