"""Opening the images that calibration samples point to, and sizing them for Qwen2-VL.

Accepted image values: a PIL image; a local path; a ``file://`` URL; a ``data:image/...;base64``
URI; an ``http(s)://`` URL (fails with a clear message when there is no network); raw bytes;
or a Hugging Face ``datasets`` Image cell that was not decoded (``{"bytes": ..., "path": ...}``).

Images are opened lazily (``open_image`` reads only the header) so that the visual-token
budget can be planned from their sizes before any pixels are decoded, and then decoded
straight to the planned size (JPEGs through PIL's draft mode, which decodes at a reduced
scale): a 40-megapixel photo never exists in memory at full resolution.
"""

from __future__ import annotations

import base64
import io
import math
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from .errors import CalibrationDataError, Reason

# Qwen2-VL sees 14x14 patches merged 2x2: one visual token per 28x28 pixels.
# Pixels per side of one visual token: patch 14 merged 2x2 (Qwen2-VL, Qwen2.5-VL); Qwen3-VL's
# patch 16 makes it 32. Read from the processor (process.token_side), 28 where none says.
PIXELS_PER_TOKEN_SIDE = 28
URL_TIMEOUT_S = 10
MAX_ASPECT_RATIO = 200  # Qwen2-VL's image processor refuses more extreme shapes


class OpenedImage:
    """An image whose size is known and whose pixels are decoded only by ``decode``."""

    def __init__(self, image: Image.Image, name: str, owned: bool = True) -> None:
        self._image = image
        self.name = name
        self.owned = owned  # False for the caller's own PIL image: never mutate or close it
        self.width, self.height = image.size

    def decode(self, height: int, width: int) -> Image.Image:
        """RGB pixels resized to exactly ``height`` x ``width``."""
        image = self._image
        try:
            if self.owned and image.format == "JPEG":
                # Decode at the smallest power-of-two scale still >= the target size.
                image.draft("RGB", (width, height))
            rgb = image.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise CalibrationDataError(f"cannot read image {self.name}: {exc}", Reason.BAD_IMAGE) from exc
        if rgb.size == (width, height):
            return rgb
        return rgb.resize((width, height), Image.Resampling.BICUBIC)

    def close(self) -> None:
        if self.owned:
            self._image.close()


def open_image(value: Any) -> OpenedImage:
    """Open ``value`` (see the module docstring) without decoding its pixels."""
    if isinstance(value, Image.Image):
        return OpenedImage(value, f"<PIL image {value.width}x{value.height}>", owned=False)
    if isinstance(value, (bytes, bytearray)):
        return _open(io.BytesIO(value), "image bytes")
    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        if value.get("bytes"):
            return _open(io.BytesIO(value["bytes"]), value.get("path") or "image bytes")
        value = value["path"]
    if not isinstance(value, str):
        raise CalibrationDataError(f"unsupported image value of type {type(value).__name__}", Reason.UNSUPPORTED)
    if value.startswith("data:"):
        return _open(io.BytesIO(decode_data_uri(value)), "data URI")
    if value.startswith(("http://", "https://")):
        return _open(io.BytesIO(download(value)), value)
    path = local_path(value)
    if not path.is_file():
        raise CalibrationDataError(f"image not found: {path}", Reason.MISSING_FILE)
    return _open(path, str(path))


def load_image(value: Any) -> Image.Image:
    """``value`` decoded as an RGB PIL image at its own size."""
    opened = open_image(value)
    try:
        return opened.decode(opened.height, opened.width)
    finally:
        opened.close()


def local_path(value: str) -> Path:
    """A local path from a plain path or a ``file://`` URL."""
    if value.startswith("file://"):
        return Path(urllib.parse.unquote(value[len("file://") :]))
    return Path(value)


def bounded_size(height: int, width: int, min_pixels: int, max_pixels: int,
                 factor: int = PIXELS_PER_TOKEN_SIDE) -> tuple[int, int]:
    """Size rounded to multiples of ``factor`` (a visual token's side) with height*width in
    [min_pixels, max_pixels].

    The same rule as the Qwen VL image processors (smart_resize), so the visual-token budget
    that the user asks for is exactly what the model sees.
    """
    if max(height, width) / max(1, min(height, width)) > MAX_ASPECT_RATIO:
        raise CalibrationDataError(
            f"image aspect ratio {width}x{height} is too extreme (over {MAX_ASPECT_RATIO}:1)", Reason.BAD_IMAGE
        )
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def resize_within(image: Image.Image, min_pixels: int, max_pixels: int) -> Image.Image:
    h, w = bounded_size(image.height, image.width, min_pixels, max_pixels)
    if (h, w) == (image.height, image.width):
        return image
    return image.resize((w, h), Image.Resampling.BICUBIC)


def decode_data_uri(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    if ";base64" not in header:
        raise CalibrationDataError("data URIs must be base64 encoded (data:image/png;base64,...)", Reason.UNSUPPORTED)
    try:
        return base64.b64decode(payload, validate=True)
    except ValueError as exc:
        raise CalibrationDataError(f"bad base64 in data URI: {exc}", Reason.BAD_IMAGE) from exc


def download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as response:
            return response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CalibrationDataError(
            f"cannot download {url}: {exc} (no network? use local files)", Reason.DOWNLOAD
        ) from exc


def _open(source: Any, name: str) -> OpenedImage:
    try:
        return OpenedImage(Image.open(source), name)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise CalibrationDataError(f"cannot read image {name}: {exc}", Reason.BAD_IMAGE) from exc
