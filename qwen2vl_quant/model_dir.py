"""Reading a model directory's config.json without torch: is this a BF16 model we handle?

The CLI asks this before it imports torch and transformers (15-28 s on a cold start), so a
wrong path gets its one-line answer at once; pipeline/source.py asks it again for the API.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .arch import spec_for
from .errors import ModelLoadError


def read_model_config(model_dir: str | Path) -> dict[str, Any]:
    """The raw config.json of a BF16 model of a supported family (arch.SPECS), or a
    one-line ModelLoadError."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory not found: {model_dir}")
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(f"{model_dir} has no config.json; is it a Hugging Face model directory?")
    try:
        raw = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{config_path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{config_path} holds no JSON object")
    try:
        spec_for(raw.get("model_type"))
    except ModelLoadError as exc:
        raise ModelLoadError(f"{model_dir}: {exc}") from None
    if raw.get("quantization_config"):
        method = raw["quantization_config"].get("quant_method")
        raise ModelLoadError(f"{model_dir} is already quantized ({method}); give the BF16 model")
    return raw
