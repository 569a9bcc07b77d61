"""qwen2vl-quant: GPTQ and AWQ quantization for Qwen2-VL language models."""

__version__ = "0.1.0"
