"""Opening calibration videos and choosing which frames the model sees.

A video value is one of:

- a list of frames (any image value of ``media.py``) -- needs no video library;
- a folder of frame images (sorted by name);
- a video file: a local path, a ``file://`` URL, a ``data:video/...;base64`` URI or an
  ``http(s)://`` URL, decoded with PyAV (``pip install 'qwen2vl-quant[video]'``).
  torchvision 0.29 no longer decodes video (its ``torchvision.io`` video functions are gone),
  so PyAV, the maintained FFmpeg binding with wheels for every platform, is the one decoder.

Frames are chosen as qwen-vl-utils does: ``fps`` frames per second of video (a file's item
``"fps"`` overrides it; a frame list's item ``"fps"`` is the rate its frames were taken at, and
without it every frame counts), at most
``max_frames``, an even number (Qwen2-VL merges frames in pairs, temporal_patch_size 2, and
would otherwise repeat the last one), spread evenly over the clip. Only the chosen frames are
kept, each resized as it is decoded, so a long video costs the memory of its samples only.
"""

from __future__ import annotations

import io
from typing import Any, Protocol

from PIL import Image

from .errors import CalibrationDataError, CalibrationError, Reason
from .media import OpenedImage, decode_data_uri, download, local_path, open_image

FRAME_FACTOR = 2  # Qwen2-VL's temporal_patch_size
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
INSTALL_HINT = "pip install 'qwen2vl-quant[video]'"


def kept_rate(kept: int, total: int, source_fps: float | None, fps: float) -> float:
    """Frames per second of the ``kept`` frames spread over a clip of ``total`` frames taken
    at ``source_fps``; without a source rate, the rate asked for (``fps``)."""
    if not source_fps or source_fps <= 0 or total <= 0:
        return fps
    return kept * source_fps / total


class OpenedVideo(Protocol):
    """A video whose frame size and chosen frame count are known before decoding."""

    height: int
    width: int
    num_frames: int
    fps: float  # rate of the chosen frames (the processor's video_metadata)

    def decode(self, height: int, width: int) -> list[Image.Image]: ...

    def close(self) -> None: ...


def open_video(value: Any, *, fps: float, max_frames: int, item_fps: float | None = None) -> OpenedVideo:
    """Open ``value`` (see the module docstring). ``item_fps`` is the item's own ``"fps"``:
    for a frame list or folder the rate its frames were taken at (qwen-vl-utils' meaning),
    for a file the sampling rate to use instead of ``fps``."""
    if isinstance(value, (list, tuple)):
        return FrameList(list(value), fps=fps, max_frames=max_frames, source_fps=item_fps)
    if isinstance(value, str) and not value.startswith(("data:", "http://", "https://")):
        path = local_path(value)
        if path.is_dir():
            frames = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not frames:
                raise CalibrationDataError(f"video folder {path} holds no frame images", Reason.MISSING_FILE)
            return FrameList(frames, fps=fps, max_frames=max_frames, source_fps=item_fps)
        if not path.is_file():
            raise CalibrationDataError(f"video not found: {path}", Reason.MISSING_FILE)
        return VideoFile(str(path), str(path), fps=item_fps or fps, max_frames=max_frames)
    if isinstance(value, str) and value.startswith("data:"):
        return VideoFile(io.BytesIO(decode_data_uri(value)), "data URI", fps=item_fps or fps, max_frames=max_frames)
    if isinstance(value, str):
        return VideoFile(io.BytesIO(download(value)), value, fps=item_fps or fps, max_frames=max_frames)
    raise CalibrationDataError(f"unsupported video value of type {type(value).__name__}", Reason.UNSUPPORTED)


def frame_indices(total: int, *, fps: float, max_frames: int, source_fps: float | None) -> list[int]:
    """Which of ``total`` frames to keep: ``fps`` per second, at most ``max_frames``, an even
    count when there are two or more, evenly spread from the first frame to the last."""
    if total < 1:
        raise CalibrationDataError("video has no frames", Reason.BAD_VIDEO)
    wanted = round(total / source_fps * fps) if source_fps and source_fps > 0 else total
    n = min(max(wanted, FRAME_FACTOR), max_frames, total)
    if n >= FRAME_FACTOR:
        n -= n % FRAME_FACTOR
    n = max(n, 1)
    if n == 1:
        return [0]
    return [round(i * (total - 1) / (n - 1)) for i in range(n)]


class FrameList:
    """A video given as frame images; frames are opened now (header only), decoded later."""

    def __init__(self, frames: list[Any], *, fps: float, max_frames: int, source_fps: float | None) -> None:
        if not frames:
            raise CalibrationDataError("video has no frames", Reason.BAD_VIDEO)
        chosen = frame_indices(len(frames), fps=fps, max_frames=max_frames, source_fps=source_fps)
        self._frames: list[OpenedImage] = []
        try:
            for index in chosen:
                self._frames.append(open_image(frames[index]))
        except CalibrationDataError:
            self.close()
            raise
        # Frames of one video must share a size; the first one decides it.
        self.height, self.width = self._frames[0].height, self._frames[0].width
        self.num_frames = len(self._frames)
        self.fps = kept_rate(self.num_frames, len(frames), source_fps, fps)

    def decode(self, height: int, width: int) -> list[Image.Image]:
        return [frame.decode(height, width) for frame in self._frames]

    def close(self) -> None:
        for frame in self._frames:
            frame.close()


class VideoFile:
    """A video file decoded with PyAV; only the chosen frames are converted to images."""

    def __init__(self, source: Any, name: str, *, fps: float, max_frames: int) -> None:
        self._av = _import_av()
        self._source, self.name = source, name
        self._container = self._open()
        try:
            stream = self._stream()
            total = stream.frames or self._count_frames()
            rate = stream.average_rate or stream.guessed_rate
            source_fps = float(rate) if rate else None
            self._indices = frame_indices(total, fps=fps, max_frames=max_frames, source_fps=source_fps)
            self.fps = kept_rate(len(self._indices), total, source_fps, fps)
            self.height, self.width = stream.codec_context.height, stream.codec_context.width
        except CalibrationDataError:
            self.close()
            raise
        if not self.height or not self.width:
            self.close()
            raise CalibrationDataError(f"cannot read video {name}: no frame size", Reason.BAD_VIDEO)
        self.num_frames = len(self._indices)

    def decode(self, height: int, width: int) -> list[Image.Image]:
        wanted, last = set(self._indices), self._indices[-1]
        frames = []
        try:
            self._rewind()
            for index, frame in enumerate(self._container.decode(self._stream())):
                if index in wanted:
                    frames.append(frame.to_image(width=width, height=height))
                if index >= last:
                    break
        except (self._av.FFmpegError, OSError) as exc:
            raise CalibrationDataError(f"cannot decode video {self.name}: {exc}", Reason.BAD_VIDEO) from exc
        if not frames:
            raise CalibrationDataError(f"cannot decode video {self.name}: no frames decoded", Reason.BAD_VIDEO)
        return frames

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def _open(self) -> Any:
        if isinstance(self._source, io.BytesIO):
            self._source.seek(0)
        try:
            return self._av.open(self._source)
        except (self._av.FFmpegError, OSError) as exc:
            raise CalibrationDataError(f"cannot read video {self.name}: {exc}", Reason.BAD_VIDEO) from exc

    def _stream(self) -> Any:
        streams = self._container.streams.video
        if not streams:
            raise CalibrationDataError(f"cannot read video {self.name}: it has no video stream", Reason.BAD_VIDEO)
        return streams[0]

    def _count_frames(self) -> int:
        """Frames in a container that does not store the count: demux (no decoding) and rewind."""
        try:
            count = sum(1 for packet in self._container.demux(self._stream()) if packet.size)
        except (self._av.FFmpegError, OSError) as exc:
            raise CalibrationDataError(f"cannot read video {self.name}: {exc}", Reason.BAD_VIDEO) from exc
        self._rewind()
        return count

    def _rewind(self) -> None:
        self.close()
        self._container = self._open()


def _import_av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise CalibrationError(
            f"decoding video files needs PyAV ({INSTALL_HINT}); or give the video as a list of frame images"
        ) from exc
    return av

