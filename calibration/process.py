"""One conversation -> the processor outputs of one sample, within the memory limits.

Order of work, chosen so that nothing large exists before it is known to be needed:

1. render the chat template and tokenize the text alone (placeholders count one token
   each): the text the sample must keep (tokens.py) fixes how many visual tokens are left
   under ``max_length``; a sample whose text alone is too long is skipped here;
2. open every image and video (headers only) and plan their sizes within the per-item pixel
   bounds and the per-sample visual-token budget (budget.py);
3. decode each image / chosen video frame straight to its planned size;
4. run the processor with ``do_resize=False`` (the sizes are already what Qwen2-VL's
   smart_resize would accept, so the budget is exactly what the model sees), then drop the
   decoded images: the sample keeps only processor tensors.

Per-item pixel bounds: an item's own ``min_pixels``/``max_pixels`` if given, else
``max_pixels = min(limit, processor's)`` (the model never sees more pixels at inference than
its processor gives it) and ``min_pixels = limit or processor's``.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import torch

from .budget import MediaShape, plan_sizes
from .conversations import Conversation, media_items
from .errors import CalibrationError, Reason, SampleSkipped
from .media import open_image
from .tokens import SpecialIds, fit_length, min_safe_cut
from .video import open_video

DEFAULT_IMAGE_PIXELS = (56 * 56, 28 * 28 * 1280)  # transformers' Qwen2-VL image processor
DEFAULT_VIDEO_PIXELS = (128 * 28 * 28, 28 * 28 * 768)  # ... and video processor


@dataclass(frozen=True)
class Limits:
    """What bounds one sample (the calibration options of ``build_samples``)."""

    min_pixels: int | None = None
    max_pixels: int | None = None
    max_frames: int = 16
    fps: float = 2.0
    max_visual_tokens: int | None = 2048
    max_length: int = 4096
    truncate: bool = True

    def __post_init__(self) -> None:
        if self.max_frames < 1 or self.fps <= 0 or self.max_length < 1:
            raise CalibrationError("max_frames, fps and max_length must be positive")
        if self.max_visual_tokens is not None and self.max_visual_tokens < 1:
            raise CalibrationError("max_visual_tokens must be positive (or None for no budget)")


@dataclass
class Processed:
    inputs: dict[str, torch.Tensor]
    truncated: bool = False
    downscaled: bool = False


def process_conversation(conversation: Conversation, processor: Any, limits: Limits) -> Processed:
    """Processor outputs (batch 1) for ``conversation``; CalibrationDataError for bad media,
    SampleSkipped when it cannot fit the limits (see the module docstring)."""
    if processor is None:
        raise CalibrationError("conversations need the model's processor (pass processor=...)")
    special = SpecialIds.of(processor)
    text = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=False)
    budget = _visual_budget(processor.tokenizer(text)["input_ids"], special, limits)
    images, videos, downscaled = _decode_media(media_items(conversation), processor, limits, budget)
    kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt", "do_resize": False}
    if images:
        kwargs["images"] = images
    if videos:
        kwargs["videos"] = [frames for frames, _ in videos]
        # The frames are the ones we chose: tell the processor their rate (Qwen2.5-VL's time
        # positions, Qwen3-VL's timestamps; both assume 24 fps otherwise) and that it must not
        # pick frames again (Qwen3-VL's video processor samples 2 fps by default).
        kwargs["video_metadata"] = [{"fps": fps, "total_num_frames": len(frames),
                                     "frames_indices": list(range(len(frames)))} for frames, fps in videos]
        kwargs["do_sample_frames"] = False
    features = processor(**kwargs)
    del images, videos, kwargs
    inputs = {k: v for k, v in features.items() if isinstance(v, torch.Tensor)}
    inputs, truncated = fit_length(inputs, special, limits.max_length, limits.truncate)
    return Processed(inputs, truncated=truncated, downscaled=downscaled)


def _decode_media(items: list[dict[str, Any]], processor: Any, limits: Limits,
                  budget: int | None) -> tuple[list[Any], list[tuple[list[Any], float]], bool]:
    """Open every item (headers only), plan sizes within ``budget``, decode to those sizes.
    The opened files are closed (and unreferenced) when this returns."""
    with ExitStack() as stack:
        opened, shapes = [], []
        for item in items:
            handle, shape = _open(item, processor, limits)
            stack.callback(handle.close)
            opened.append(handle)
            shapes.append(shape)
        plan = plan_sizes(shapes, budget)
        images, videos = [], []
        for item, handle, (height, width) in zip(items, opened, plan.sizes):
            if item["type"] == "image":
                images.append(handle.decode(height, width))
            else:
                frames = handle.decode(height, width)
                # Frames are merged in pairs; Qwen3-VL refuses a lone frame that the others
                # would repeat anyway.
                videos.append((frames * 2 if len(frames) == 1 else frames, handle.fps))
    return images, videos, plan.downscaled


def process_ready(outputs: Any, processor: Any, limits: Limits) -> Processed:
    """A user's ready processor outputs: tensors kept as they are, length rule applied."""
    inputs = {k: v for k, v in dict(outputs).items() if isinstance(v, torch.Tensor)}
    if inputs.get("input_ids") is None or inputs["input_ids"].dim() != 2:
        raise CalibrationError("processor outputs need an input_ids tensor of shape [batch, seq]")
    inputs, truncated = fit_length(inputs, SpecialIds.of(processor), limits.max_length, limits.truncate)
    return Processed(inputs, truncated=truncated)


def _visual_budget(ids: list[int], special: SpecialIds, limits: Limits) -> int | None:
    """Visual tokens left for the sample once the text it must keep is counted."""
    placeholders = sum(1 for t in ids if t in (special.image_pad, special.video_pad))
    kept = min_safe_cut(ids, special) if limits.truncate else len(ids)
    text_tokens = kept - placeholders
    if text_tokens > limits.max_length:
        how = "before the end of its last image/video message" if limits.truncate else "(truncation is off)"
        raise SampleSkipped(f"{text_tokens} text tokens {how}, over max_length {limits.max_length}", Reason.TOO_LONG)
    room = limits.max_length - text_tokens
    return room if limits.max_visual_tokens is None else min(room, limits.max_visual_tokens)


def token_side(processor: Any) -> int:
    """Pixels per side of one visual token: the image processor's patch size times its merge size."""
    image = processor.image_processor
    return int(getattr(image, "patch_size", 14)) * int(getattr(image, "merge_size", 2))


def _open(item: dict[str, Any], processor: Any, limits: Limits) -> tuple[Any, MediaShape]:
    kind = item["type"]
    part = processor.image_processor if kind == "image" else getattr(processor, "video_processor", None)
    lo, hi = _pixel_bounds(part, DEFAULT_IMAGE_PIXELS if kind == "image" else DEFAULT_VIDEO_PIXELS, limits, item)
    side = token_side(processor)
    if kind == "image":
        handle = open_image(item["image"])
        return handle, MediaShape(handle.height, handle.width, lo, hi, side=side)
    handle = open_video(item["video"], fps=limits.fps, max_frames=int(item.get("max_frames", limits.max_frames)),
                        item_fps=item.get("fps"))
    return handle, MediaShape(handle.height, handle.width, lo, hi, frames=handle.num_frames, video=True, side=side)


def _pixel_bounds(part: Any, default: tuple[int, int], limits: Limits, item: dict[str, Any]) -> tuple[int, int]:
    size = getattr(part, "size", None)
    own_lo = _size_value(size, "shortest_edge") or getattr(part, "min_pixels", None) or default[0]
    own_hi = _size_value(size, "longest_edge") or getattr(part, "max_pixels", None) or default[1]
    hi = int(item.get("max_pixels") or min(limits.max_pixels or math.inf, own_hi))
    lo = int(item.get("min_pixels") or limits.min_pixels or own_lo)
    return min(lo, hi), hi


def _size_value(size: Any, key: str) -> int | None:
    value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
    return value if isinstance(value, int) and value > 0 else None
