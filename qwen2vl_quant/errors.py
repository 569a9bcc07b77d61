"""Exceptions that mean "the user asked for something we cannot do".

The CLI prints these as one line and exits non-zero; anything else is a bug and keeps its
traceback.
"""


class QuantError(Exception):
    """Base class of every error caused by the user's input or environment."""


class ConfigError(QuantError, ValueError):
    """An invalid quantization or calibration option."""


class ModelLoadError(QuantError):
    """The model directory is missing, is not Qwen2-VL, or its weights are broken."""


class CalibrationError(QuantError):
    """The calibration data is empty, unreadable or refers to missing files."""


class OutputError(QuantError):
    """The output directory cannot be written (exists, not empty, would overwrite input...)."""
