"""Calibration errors: part of the package's QuantError family, so the CLI prints them as one line."""

from qwen2vl_quant.errors import CalibrationError


class CalibrationDataError(CalibrationError):
    """A calibration sample or file that cannot be used; the message names it."""
