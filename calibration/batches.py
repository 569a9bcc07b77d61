"""Calibration data -> one model input per sample, never one padded batch of everything.

Processing each sample on its own bounds the peak memory of calibration by the largest
sample, not by their number (users of other toolkits run out of memory with a handful of
images padded into one batch).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch

from .conversations import Conversation, check_conversation, load_conversations
from .errors import CalibrationDataError
from .media import load_image, load_video_frames, resize_within

logger = logging.getLogger(__name__)

BUILTIN_FILE = Path(__file__).with_name("builtin") / "builtin.jsonl"
DEFAULT_MIN_PIXELS = 4 * 28 * 28


@dataclass
class CalibrationSample:
    """Processor outputs for one sample (batch dimension 1, or a user's ready batch)."""

    inputs: dict[str, torch.Tensor]
    name: str

    @property
    def token_mask(self) -> torch.Tensor:
        """bool [batch, seq]: the real tokens (padding excluded from every statistic)."""
        mask = self.inputs.get("attention_mask")
        if mask is None:
            return torch.ones_like(self.inputs["input_ids"], dtype=torch.bool)
        return mask.bool()


@dataclass
class CalibrationSummary:
    samples: int = 0
    text_tokens: int = 0
    image_tokens: int = 0
    video_tokens: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in self.skipped.items()) or "none"
        return (
            f"{self.samples} samples: {self.text_tokens} text, {self.image_tokens} image and "
            f"{self.video_tokens} video tokens; skipped: {skipped}"
        )


def build_samples(
    calib_data: Any,
    processor: Any,
    *,
    num_samples: int | None,
    seed: int,
    min_pixels: int | None,
    max_pixels: int | None,
    max_length: int,
) -> tuple[list[CalibrationSample], CalibrationSummary]:
    """Turn conversations, a calibration file path, or ready processor outputs into samples.

    ``calib_data`` None means the built-in offline set. Selection is deterministic in ``seed``.
    """
    items = _as_items(calib_data)
    if not items:
        raise CalibrationDataError("calibration data is empty")
    chosen = _select(len(items), num_samples, seed)
    summary = CalibrationSummary()
    samples = []
    for index in chosen:
        item = items[index]
        if _is_processor_output(item):
            inputs = {k: v for k, v in dict(item).items() if isinstance(v, torch.Tensor)}
        else:
            conversation = check_conversation(item, str(index))
            inputs = _process(conversation, processor, min_pixels, max_pixels, where=str(index))
        if inputs["input_ids"].shape[-1] > max_length:
            summary.skipped[f"longer than {max_length} tokens"] = summary.skipped.get(f"longer than {max_length} tokens", 0) + 1
            continue
        _count_tokens(inputs, processor, summary)
        samples.append(CalibrationSample(inputs, name=str(index)))
    summary.samples = len(samples)
    if not samples:
        raise CalibrationDataError(f"no usable calibration samples ({summary.describe()})")
    logger.info("calibration: %s", summary.describe())
    return samples, summary


def _as_items(calib_data: Any) -> list[Any]:
    if calib_data is None:
        return load_conversations(BUILTIN_FILE)
    if isinstance(calib_data, (str, Path)):
        return load_conversations(calib_data)
    if _is_processor_output(calib_data):
        return [calib_data]
    if isinstance(calib_data, Iterable):
        return list(calib_data)
    raise CalibrationDataError(f"unsupported calibration data of type {type(calib_data).__name__}")


def _is_processor_output(item: Any) -> bool:
    return isinstance(item, Mapping) and "input_ids" in item


def _select(count: int, num_samples: int | None, seed: int) -> list[int]:
    if num_samples is None or num_samples >= count:
        return list(range(count))
    return sorted(random.Random(seed).sample(range(count), num_samples))


def _process(
    conversation: Conversation, processor: Any, min_pixels: int | None, max_pixels: int | None, where: str
) -> dict[str, torch.Tensor]:
    if processor is None:
        raise CalibrationDataError("conversations need the model's processor (pass processor=...)")
    image_processor = processor.image_processor
    lo = min_pixels or getattr(image_processor, "min_pixels", None) or DEFAULT_MIN_PIXELS
    hi = max_pixels or getattr(image_processor, "max_pixels", None) or 1280 * 28 * 28
    images, videos = [], []
    try:
        for message in conversation:
            if isinstance(message["content"], str):
                continue
            for item in message["content"]:
                if item["type"] == "image":
                    images.append(resize_within(load_image(item["image"]), lo, hi))
                elif item["type"] == "video":
                    frames = load_video_frames(item["video"])
                    videos.append([resize_within(f, lo, hi) for f in frames])
    except CalibrationDataError as exc:
        raise CalibrationDataError(f"sample {where}: {exc}") from exc
    text = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=False)
    kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
    if images:
        kwargs["images"] = images
    if videos:
        kwargs["videos"] = videos
    features = processor(**kwargs)
    return {k: v for k, v in features.items() if isinstance(v, torch.Tensor)}


def _count_tokens(inputs: dict[str, torch.Tensor], processor: Any, summary: CalibrationSummary) -> None:
    ids = inputs["input_ids"]
    mask = inputs.get("attention_mask")
    real = ids[mask.bool()] if mask is not None else ids.reshape(-1)
    image_id = _token_id(processor, "image_token", "<|image_pad|>")
    video_id = _token_id(processor, "video_token", "<|video_pad|>")
    image = int((real == image_id).sum()) if image_id is not None else 0
    video = int((real == video_id).sum()) if video_id is not None else 0
    summary.image_tokens += image
    summary.video_tokens += video
    summary.text_tokens += real.numel() - image - video


def _token_id(processor: Any, attribute: str, default: str) -> int | None:
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None:
        return None
    token = getattr(processor, attribute, None) or default
    token_id = tokenizer.convert_tokens_to_ids(token)
    return token_id if isinstance(token_id, int) and token_id >= 0 else None
