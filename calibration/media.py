"""Loading the images and videos that calibration conversations point to.

Accepted image values: a PIL image, a local path, a ``file://`` URL, a ``data:image/...;base64``
URI, or an ``http(s)://`` URL (which fails with a clear message when there is no network).
Videos: a list of frames (any of the image values above), which needs no video library.
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

from .errors import CalibrationDataError

# Qwen2-VL sees 14x14 patches merged 2x2: one visual token per 28x28 pixels.
PIXELS_PER_TOKEN_SIDE = 28
URL_TIMEOUT_S = 10


def load_image(value: Any) -> Image.Image:
    """Return ``value`` as an RGB PIL image, or raise CalibrationDataError saying why not."""
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if not isinstance(value, str):
        raise CalibrationDataError(f"unsupported image value of type {type(value).__name__}")
    if value.startswith("data:"):
        return _open(io.BytesIO(_decode_data_uri(value)), "data URI")
    if value.startswith(("http://", "https://")):
        return _open(io.BytesIO(_download(value)), value)
    path = Path(urllib.parse.unquote(value[len("file://") :])) if value.startswith("file://") else Path(value)
    if not path.is_file():
        raise CalibrationDataError(f"image not found: {path}")
    return _open(path, str(path))


def load_video_frames(value: Any) -> list[Image.Image]:
    """A video given as a list of frames -> list of RGB PIL images."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise CalibrationDataError("video has no frames")
        return [load_image(frame) for frame in value]
    raise CalibrationDataError(
        f"video {str(value)[:80]!r}: give videos as a list of frame images (video files are not supported yet)"
    )


def bounded_size(height: int, width: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Size rounded to multiples of 28 with height*width in [min_pixels, max_pixels].

    The same rule as Qwen2-VL's image processor (smart_resize), so the visual-token budget
    that the user asks for is exactly what the model sees.
    """
    factor = PIXELS_PER_TOKEN_SIDE
    if max(height, width) / max(1, min(height, width)) > 200:
        raise CalibrationDataError(f"image aspect ratio {width}x{height} is too extreme (over 200:1)")
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


def _open(source: Any, name: str) -> Image.Image:
    try:
        with Image.open(source) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise CalibrationDataError(f"cannot read image {name}: {exc}") from exc


def _decode_data_uri(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    if ";base64" not in header:
        raise CalibrationDataError("data URIs must be base64 encoded (data:image/png;base64,...)")
    try:
        return base64.b64decode(payload, validate=True)
    except ValueError as exc:
        raise CalibrationDataError(f"bad base64 in data URI: {exc}") from exc


def _download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise CalibrationDataError(f"cannot download {url}: {exc} (no network? use local files)") from exc
