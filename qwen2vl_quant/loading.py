"""Loading our quantized checkpoints back without any third-party quantization library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel

from .arch import ArchSpec, spec_for
from .errors import ModelLoadError
from .kernels.layout import resolve_group_size
from .modules import replace_module
from .modules.quant_linear import AWQLinear, GPTQLinear, QuantLinear
from .pipeline.checkpoint import CheckpointReader
from .pipeline.source import build_skeleton, rebuild_meta_buffers


def load_quantized(path: str | Path, device: str | torch.device = "cpu",
                   dtype: torch.dtype | None = None) -> PreTrainedModel:
    """A quantized checkpoint written by qwen2vl-quant (or any GPTQ v1 / AWQ GEMM
    checkpoint of a family we handle), ready for ``generate``.

    dtype: compute dtype of the model (default: the checkpoint's, BF16 for Qwen2-VL).
    """
    path = Path(path)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(f"{path} has no config.json")
    raw = json.loads(config_path.read_text())
    qconfig = raw.get("quantization_config")
    if not qconfig:
        raise ModelLoadError(f"{path} is not a quantized checkpoint (no quantization_config in config.json)")
    spec = spec_for(raw.get("model_type"))
    config = AutoConfig.from_pretrained(path)
    # Build a plain model: transformers would otherwise route a quantization_config to its
    # own (optional) GPTQ/AWQ integrations.
    config.quantization_config = None
    del config.quantization_config
    model = build_skeleton(config, spec)
    dtype = dtype or _dtype(config)
    _swap_linears(model, spec, qconfig, dtype)
    reader = CheckpointReader(path, spec)
    try:
        state = {name: reader.get(name) for name in reader.names()}
    finally:
        reader.close()
    if config.tie_word_embeddings:
        state.setdefault("lm_head.weight", state["model.language_model.embed_tokens.weight"])
    _check_groups(path, state, qconfig)
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


def _dtype(config: PretrainedConfig) -> torch.dtype:
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or torch.bfloat16
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def _swap_linears(model: nn.Module, spec: ArchSpec, qconfig: dict[str, Any], dtype: torch.dtype) -> None:
    method = qconfig.get("quant_method")
    module_class = {"gptq": GPTQLinear, "awq": AWQLinear}.get(method)
    if module_class is None:
        raise ModelLoadError(f"unsupported quant_method {method!r}")
    if method == "gptq" and qconfig.get("checkpoint_format", "gptq") != "gptq":
        raise ModelLoadError(f"unsupported GPTQ checkpoint_format {qconfig['checkpoint_format']!r}")
    for layer in model.get_submodule(spec.layers_path):
        for name in spec.quantized_linears:
            linear = layer.get_submodule(name)
            try:
                group = resolve_group_size(int(qconfig["group_size"]), linear.in_features)
            except ValueError as exc:
                raise ModelLoadError(f"quantization_config: {exc} ({name})") from None
            with torch.device("meta"):
                module = module_class(linear.in_features, linear.out_features, bits=qconfig["bits"],
                                      group_size=group, bias=linear.bias is not None, dtype=dtype)
            replace_module(layer, name, module)


def _check_groups(path: Path, state: dict[str, torch.Tensor], qconfig: dict[str, Any]) -> None:
    """The config's group size must be the one the tensors were written with: with
    group_size -1 in the config, scales have one row; with g, K / g rows."""
    pack = 32 // int(qconfig["bits"])
    for name, scales in state.items():
        if not name.endswith(".scales"):
            continue
        qweight = state[name[: -len("scales")] + "qweight"]
        k = qweight.shape[0] * pack if qconfig["quant_method"] == "gptq" else qweight.shape[0]
        try:
            expected = k // resolve_group_size(int(qconfig["group_size"]), k)
        except ValueError as exc:
            raise ModelLoadError(f"{path}: {name}: {exc}") from None
        if scales.shape[0] != expected:
            raise ModelLoadError(f"{path}: {name} has {scales.shape[0]} groups, but group_size "
                                 f"{qconfig['group_size']} in config.json means {expected}")
