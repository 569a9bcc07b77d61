"""The visual-token budget of one sample: how large each of its images and videos may be.

Cost (Qwen2-VL: 14x14 patches merged 2x2, frames merged in pairs): an image of h x w pixels
(multiples of 28) is (h/28)*(w/28) tokens; a video of T frames of h x w is
ceil(T/2)*(h/28)*(w/28) tokens. Qwen3-VL's 16x16 patches make the side 32 (MediaShape.side).

The plan is made from the media's sizes before any pixels are decoded. Each item first gets
the size the processor would give it (``bounded_size`` within its [min_pixels, max_pixels]).
If the sample then costs more than its budget, every item is shrunk by the same area factor
(aspect ratio kept, sides multiples of 28) but never below its min_pixels; if even that does
not fit, the sample is skipped (``SampleSkipped``) rather than mangled further. The number of
video frames is never reduced here: ``max_frames`` bounds it up front.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import Reason, SampleSkipped
from .media import PIXELS_PER_TOKEN_SIDE, bounded_size

SHRINK_STEP = 0.95  # per retry when rounding to multiples of 28 left the sample just over
MAX_TRIES = 200


@dataclass(frozen=True)
class MediaShape:
    """One image (frames=1, video=False) or video as planned: original size, pixel bounds,
    and the side in pixels of one visual token (28, or 32 for Qwen3-VL)."""

    height: int
    width: int
    min_pixels: int
    max_pixels: int
    frames: int = 1
    video: bool = False
    side: int = PIXELS_PER_TOKEN_SIDE


@dataclass(frozen=True)
class Plan:
    sizes: list[tuple[int, int]]  # (height, width) per item, in the sample's order
    tokens: int
    downscaled: bool


def visual_tokens(height: int, width: int, frames: int = 1, video: bool = False,
                  side: int = PIXELS_PER_TOKEN_SIDE) -> int:
    per_frame = (height // side) * (width // side)
    return per_frame * math.ceil(frames / 2) if video else per_frame


def plan_sizes(shapes: list[MediaShape], budget: int | None) -> Plan:
    """Sizes for ``shapes`` costing at most ``budget`` visual tokens (None: no budget)."""
    sizes = [bounded_size(s.height, s.width, s.min_pixels, s.max_pixels, s.side) for s in shapes]
    tokens = _cost(shapes, sizes)
    if budget is None or tokens <= budget:
        return Plan(sizes, tokens, downscaled=False)
    floor = [bounded_size(s.height, s.width, s.min_pixels, s.min_pixels, s.side) for s in shapes]
    floor = [min(f, b, key=lambda hw: hw[0] * hw[1]) for f, b in zip(floor, sizes)]
    if _cost(shapes, floor) > budget:
        raise SampleSkipped(
            f"needs {_cost(shapes, floor)} visual tokens even at min_pixels, over the budget of {budget} "
            f"(raise max_visual_tokens or lower min_pixels)",
            Reason.VISUAL_BUDGET,
        )
    areas = [h * w for h, w in sizes]
    factor = budget / tokens
    for _ in range(MAX_TRIES):
        caps = [max(s.min_pixels, int(area * factor)) for s, area in zip(shapes, areas)]
        planned = [bounded_size(s.height, s.width, min(s.min_pixels, cap), min(s.max_pixels, cap), s.side)
                   for s, cap in zip(shapes, caps)]
        planned = [min(p, b, key=lambda hw: hw[0] * hw[1]) for p, b in zip(planned, sizes)]
        cost = _cost(shapes, planned)
        if cost <= budget:
            return Plan(planned, cost, downscaled=True)
        factor *= SHRINK_STEP
    return Plan(floor, _cost(shapes, floor), downscaled=True)


def _cost(shapes: list[MediaShape], sizes: list[tuple[int, int]]) -> int:
    return sum(visual_tokens(h, w, s.frames, s.video, s.side) for s, (h, w) in zip(shapes, sizes))
