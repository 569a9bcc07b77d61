"""The models a benchmark compares: the BF16 checkpoint and quantized outputs of this tool.

Each is a directory. Its row label ("BF16", "GPTQ-Int4", "AWQ", "RTN-Int4", as in the
Qwen2-VL README) comes from its config.json and quantization_report.json unless the user
gives one (``LABEL=DIR``). Loading:

- loader "ours" (default): BF16 through transformers, quantized checkpoints through
  ``qwen2vl_quant.load_quantized``, whose Linear modules use our kernels (the fastest path
  the dispatcher finds for the device);
- loader "transformers": everything through ``from_pretrained`` (GPTQ through optimum +
  gptqmodel), to compare with what users of transformers get.
"""

from __future__ import annotations

import gc
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, ModelLoadError

logger = logging.getLogger(__name__)

LOADERS = ("ours", "transformers")


@dataclass(frozen=True)
class ModelEntry:
    """One column of comparison: a model directory and its label in the tables."""

    label: str
    path: str
    quant_method: str | None  # None for the unquantized (BF16) model
    bits: int | None = None
    weight_bytes: int = 0

    @property
    def is_reference(self) -> bool:
        return self.quant_method is None


def model_entry(path: str | Path, label: str | None = None) -> ModelEntry:
    """Inspect a model directory (no weights are read); ModelLoadError if it is not one."""
    path = Path(path)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(f"{path} is not a model directory (no config.json)")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {config_path}: {exc}") from exc
    weights = sum(p.stat().st_size for p in path.glob("*.safetensors"))
    if weights == 0:
        raise ModelLoadError(f"{path} has no .safetensors weights")
    qconfig = config.get("quantization_config") or {}
    method = qconfig.get("quant_method")
    bits = qconfig.get("bits", qconfig.get("w_bit"))
    if method is not None:
        method = str(method).lower()
        report = path / "quantization_report.json"
        if report.is_file():  # RTN is written in the GPTQ format; our report tells them apart
            try:
                method = json.loads(report.read_text()).get("method", method)
            except (OSError, json.JSONDecodeError):
                logger.warning("ignoring unreadable %s", report)
    return ModelEntry(label or default_label(method, bits, config), str(path), method, bits, weights)


def default_label(method: str | None, bits: int | None, config: dict[str, Any]) -> str:
    if method is None:
        dtype = str(config.get("dtype") or config.get("torch_dtype") or "bfloat16")
        return {"bfloat16": "BF16", "float16": "FP16", "float32": "FP32"}.get(dtype, dtype.upper())
    if method == "awq":
        return "AWQ" if bits in (4, None) else f"AWQ-Int{bits}"
    return f"{method.upper()}-Int{bits}" if bits else method.upper()


def parse_quantized(spec: str) -> tuple[str | None, str]:
    """``DIR`` or ``LABEL=DIR`` (a label may not contain "=" or "/")."""
    label, sep, path = spec.partition("=")
    if sep and label and "/" not in label and path:
        return label, path
    return None, spec


def resolve_models(model_dir: str | Path, quantized: list[Any]) -> list[ModelEntry]:
    """The reference first, then each quantized directory in the order given.

    ``quantized`` items: a path, "LABEL=PATH", or a (label, path) pair.
    """
    entries = [model_entry(model_dir)]
    if not entries[0].is_reference:
        raise ConfigError(f"{model_dir} is already quantized; give the BF16 model first")
    for item in quantized:
        label, path = item if isinstance(item, tuple) else parse_quantized(str(item))
        entry = model_entry(path, label)
        if entry.is_reference:
            raise ConfigError(f"{path} is not quantized (no quantization_config in config.json)")
        entries.append(entry)
    labels = [e.label for e in entries]
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        raise ConfigError(f"two models have the label {duplicates[0]!r}; name them with LABEL=DIR")
    return entries


def load_model(entry: ModelEntry, device: torch.device, loader: str = "ours",
               attn_implementation: str | None = "sdpa", multi_gpu: bool = False) -> tuple[Any, Any]:
    """(model in eval mode on ``device``, its processor).

    multi_gpu: models loaded by transformers (BF16, or any with loader "transformers") are
    spread over every visible GPU (device_map="auto", as a 72B BF16 model needs); ours
    always runs on ``device`` alone (a 72B Int4 model fits one 80 GB GPU).
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if loader not in LOADERS:
        raise ConfigError(f"loader must be one of {LOADERS}, got {loader!r}")
    spread = multi_gpu and device.type == "cuda"
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16, "device_map": "auto" if spread else {"": str(device)}}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if entry.is_reference or loader == "transformers":
        model = AutoModelForImageTextToText.from_pretrained(entry.path, **kwargs)
    else:
        from ..loading import load_quantized

        model = load_quantized(entry.path, device=device)
        if attn_implementation and hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation(attn_implementation)
    processor = AutoProcessor.from_pretrained(entry.path)
    return model.eval(), processor


def release_memory() -> None:
    """Give back the memory of a model the caller has dropped, before the next one loads."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def device_count(model: Any) -> int:
    """How many GPUs hold the model's weights ("GPU Num"); 0 on CPU."""
    devices = {p.device for p in model.parameters()} | {b.device for b in model.buffers()}
    return len({d for d in devices if d.type == "cuda"})
