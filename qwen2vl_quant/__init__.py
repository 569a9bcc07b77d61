"""qwen2vl-quant: GPTQ and AWQ quantization for Qwen2-VL language models.

The public names are imported lazily (PEP 562) so that ``import qwen2vl_quant.kernels`` or
the CLI's ``--help`` do not pay for importing transformers.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "quantize": "api",
    "quantize_checkpoint": "api",
    "save_quantized": "api",
    "write_demo_model": "api",
    "load_quantized": "loading",
    "GPTQConfig": "config",
    "AWQConfig": "config",
    "RTNConfig": "config",
    "CalibrationConfig": "config",
    "QuantReport": "report",
    "QuantError": "errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
