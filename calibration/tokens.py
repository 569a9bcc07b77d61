"""Token bookkeeping: which ids are special, where a sample may be cut, what it contains.

The length rule (issue 4): a sample longer than ``max_length`` tokens is cut only at a
message boundary -- just before an ``<|im_start|>`` -- that lies after its last
``<|vision_start|>...<|vision_end|>`` span, keeping the longest such prefix that fits. Every
image and video stays whole, so the pixel values still match the kept placeholders. A sample
with no such cut that fits (a single message that is too long, or an image late in a long
conversation) is skipped and counted, never cut through a message or a vision span.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .errors import Reason, SampleSkipped

SPECIAL_TOKENS = {
    "im_start": "<|im_start|>",
    "vision_start": "<|vision_start|>",
    "vision_end": "<|vision_end|>",
    "image_pad": "<|image_pad|>",
    "video_pad": "<|video_pad|>",
}


@dataclass(frozen=True)
class SpecialIds:
    im_start: int | None
    vision_start: int | None
    vision_end: int | None
    image_pad: int | None
    video_pad: int | None

    @classmethod
    def of(cls, processor: Any) -> "SpecialIds":
        tokenizer = getattr(processor, "tokenizer", None)
        # The processor names its own placeholder tokens; the rest are fixed by the template.
        tokens = {**SPECIAL_TOKENS, "image_pad": getattr(processor, "image_token", None) or SPECIAL_TOKENS["image_pad"],
                  "video_pad": getattr(processor, "video_token", None) or SPECIAL_TOKENS["video_pad"]}
        return cls(**{name: _token_id(tokenizer, token) for name, token in tokens.items()})


def min_safe_cut(ids: Sequence[int], special: SpecialIds) -> int:
    """The shortest prefix a cut may keep: up to the end of the message holding the last
    vision span (or of the first message, for text only)."""
    ends = [i for i, t in enumerate(ids) if t == special.vision_end]
    after = ends[-1] + 1 if ends else 1
    return next((i for i in range(after, len(ids)) if ids[i] == special.im_start), len(ids))


def best_cut(ids: Sequence[int], special: SpecialIds, max_length: int) -> int | None:
    """The longest allowed prefix length <= ``max_length``, or None if there is none."""
    if len(ids) <= max_length:
        return len(ids)
    shortest = min_safe_cut(ids, special)
    cuts = [i for i in range(shortest, max_length + 1) if i < len(ids) and ids[i] == special.im_start]
    return cuts[-1] if cuts else None


def fit_length(inputs: dict[str, torch.Tensor], special: SpecialIds, max_length: int,
               truncate: bool) -> tuple[dict[str, torch.Tensor], bool]:
    """``inputs`` within ``max_length`` tokens (cut as the module docstring says, when
    ``truncate``), and whether it was cut; SampleSkipped when it cannot be."""
    ids = inputs["input_ids"]
    length = ids.shape[-1]
    if length <= max_length:
        return inputs, False
    cut = best_cut(ids[0].tolist(), special, max_length) if truncate and ids.shape[0] == 1 else None
    if cut is None:
        how = "with no message boundary after its last image/video to cut at" if truncate else "(truncation is off)"
        raise SampleSkipped(f"{length} tokens, over max_length {max_length} {how}", Reason.TOO_LONG)
    cut_inputs = {k: v[:, :cut] if v.dim() == 2 and v.shape == ids.shape else v for k, v in inputs.items()}
    return cut_inputs, True


def count_tokens(inputs: dict[str, torch.Tensor], special: SpecialIds) -> tuple[int, int, int]:
    """(text, image, video) tokens among the real (unpadded) tokens of ``inputs``."""
    ids = inputs["input_ids"]
    mask = inputs.get("attention_mask")
    real = ids[mask.bool()] if mask is not None else ids.reshape(-1)
    image = int((real == special.image_pad).sum()) if special.image_pad is not None else 0
    video = int((real == special.video_pad).sum()) if special.video_pad is not None else 0
    return real.numel() - image - video, image, video


def _token_id(tokenizer: Any, token: str) -> int | None:
    if tokenizer is None:
        return None
    token_id = tokenizer.convert_tokens_to_ids(token)
    unknown = getattr(tokenizer, "unk_token_id", None)
    return token_id if isinstance(token_id, int) and token_id >= 0 and token_id != unknown else None
