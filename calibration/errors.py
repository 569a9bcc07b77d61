"""Calibration errors: part of the package's QuantError family, so the CLI prints them as one line.

Two kinds of trouble, kept apart on purpose:

- ``CalibrationDataError``: one sample (or file) is bad -- missing file, corrupt image,
  unsupported content, invalid JSON. It names the sample; with ``skip_bad_samples`` it
  becomes a counted skip instead of an error.
- ``SampleSkipped``: a well-formed sample that does not fit the limits (visual-token budget,
  max_length). Always a counted skip: the limits exist to bound memory, not to judge data.

A missing optional dependency (PyAV, datasets) is neither: it raises the plain
``CalibrationError`` and is never skipped, because skipping every video sample of a set
because a package is absent would silently change what the model is calibrated on.
"""

from __future__ import annotations

from qwen2vl_quant.errors import CalibrationError

__all__ = ["CalibrationDataError", "CalibrationError", "SampleSkipped", "Reason"]


class Reason:
    """Short, stable skip reasons: the keys of ``CalibrationSummary.skipped``."""

    INVALID_JSON = "invalid JSON"
    INVALID_FORMAT = "invalid conversation"
    UNSUPPORTED = "unsupported content"
    EMPTY = "empty conversation"
    MISSING_FILE = "missing file"
    BAD_IMAGE = "unreadable image"
    BAD_VIDEO = "unreadable video"
    DOWNLOAD = "download failed"
    VISUAL_BUDGET = "over the visual-token budget"
    TOO_LONG = "longer than max_length"


class CalibrationDataError(CalibrationError):
    """A calibration sample or file that cannot be used; the message names it.

    ``reason`` is one of ``Reason``'s values (counted in the summary when skipped);
    ``where`` is the sample's location (``file.jsonl:3``, ``hf:name[12]``, ``sample 4``),
    filled in once by the code that knows it.
    """

    def __init__(self, message: str, reason: str = Reason.INVALID_FORMAT, where: str | None = None) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.message = message
        self.reason = reason
        self.where = where

    def located(self, where: str) -> "CalibrationDataError":
        """The same error naming ``where`` (unchanged if it already names a place)."""
        if self.where is not None:
            return self
        located = CalibrationDataError(self.message, self.reason, where)
        located.__cause__ = self.__cause__
        return located


class SampleSkipped(Exception):
    """A sample that does not fit the configured limits; counted under ``reason``."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
