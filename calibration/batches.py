"""Calibration data -> one model input per sample, never one padded batch of everything.

Processing each sample on its own bounds the peak memory of calibration by the largest
sample, not by their number (users of other toolkits run out of memory with a handful of
images padded into one batch). Each sample is bounded too: pixels per image, frames per
video, visual tokens per sample (budget.py) and tokens per sample (tokens.py). What a
sample keeps is its processor tensors only; decoded images and frames are dropped as soon
as the processor has run, and only the chosen records are ever read (sources.py).

Selection is deterministic: the same data and options give the same samples in the same
order. With ``num_samples`` smaller than the data, a seeded random subset is taken (kept in
data order unless ``shuffle``); a sample that is skipped is replaced by the next one of the
same seeded order, so ``num_samples`` usable samples come out whenever the data has them.
``shuffle`` puts the samples in the seeded random order. A stream (an iterator, a streamed
Hub dataset) is read in order and its first ``num_samples`` usable records are taken.

``build_samples`` returns the list the pipeline needs; ``iter_samples`` is the same work as
a generator, for callers that consume one sample at a time.
"""

from __future__ import annotations

import bisect
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch

from qwen2vl_quant.config import CalibrationConfig

from .errors import CalibrationDataError, SampleSkipped
from .process import Limits, process_conversation, process_ready
from .records import is_processor_output
from .sources import BUILTIN_FILE, Source, open_sources
from .tokens import SpecialIds, count_tokens

__all__ = ["BUILTIN_FILE", "CalibrationSample", "CalibrationSummary", "build_samples", "iter_samples"]

logger = logging.getLogger(__name__)


@dataclass
class CalibrationSample:
    """Processor outputs for one sample (batch dimension 1, or a user's ready batch)."""

    inputs: dict[str, torch.Tensor]
    name: str  # where it came from: "calib.jsonl:3", "hf:user/set (train)[12]", "sample 4"
    source: str = ""

    @property
    def token_mask(self) -> torch.Tensor:
        """bool [batch, seq]: the real tokens (padding excluded from every statistic)."""
        mask = self.inputs.get("attention_mask")
        if mask is None:
            return torch.ones_like(self.inputs["input_ids"], dtype=torch.bool)
        return mask.bool()


@dataclass
class CalibrationSummary:
    """What calibration will see, reported before quantization starts."""

    samples: int = 0
    text_tokens: int = 0
    image_tokens: int = 0
    video_tokens: int = 0
    truncated: int = 0  # cut at a message boundary after their last image/video
    downscaled: int = 0  # media shrunk to fit the per-sample visual-token budget
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    sources: dict[str, int] = field(default_factory=dict)  # source label -> samples used
    first_skip: dict[str, str] = field(default_factory=dict)  # reason -> first message, for logs
    requested: int | None = None  # num_samples asked for
    available: int | None = None  # records in the data (None for a stream)

    def add(self, source: str, tokens: tuple[int, int, int], truncated: bool, downscaled: bool) -> None:
        self.samples += 1
        self.sources[source] = self.sources.get(source, 0) + 1
        self.text_tokens += tokens[0]
        self.image_tokens += tokens[1]
        self.video_tokens += tokens[2]
        self.truncated += truncated
        self.downscaled += downscaled

    def skip(self, reason: str, message: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.first_skip.setdefault(reason, message)

    def describe(self) -> str:
        sources = ", ".join(f"{label}: {n}" for label, n in self.sources.items())
        text = (f"{self.samples} samples ({sources or 'none'}): {self.text_tokens} text, {self.image_tokens} image "
                f"and {self.video_tokens} video tokens")
        if self.truncated:
            text += f"; {self.truncated} truncated at a message boundary"
        if self.downscaled:
            text += f"; {self.downscaled} with images/videos downscaled to the visual-token budget"
        total = sum(self.skipped.values())
        reasons = ", ".join(f"{n} {why}" for why, n in self.skipped.items())
        text += f"; skipped {total}: {reasons}" if total else "; skipped: none"
        if self.requested is not None and self.samples < self.requested:
            have = f"has {self.available} records" if self.available is not None else "ran out"
            text += f" (asked for {self.requested} samples; the calibration data {have})"
        return text


def build_samples(calib_data: Any, processor: Any = None,
                  calibration: CalibrationConfig = CalibrationConfig()) -> tuple[list[CalibrationSample], CalibrationSummary]:
    """Turn ``calib_data`` (any form sources.py accepts; None: the built-in set) into samples
    chosen and bounded as ``calibration`` says. Raises CalibrationDataError naming the
    first bad sample (unless ``skip_bad_samples``) or when no sample is usable; logs the summary.
    """
    summary = CalibrationSummary()
    samples = list(iter_samples(calib_data, processor, summary, calibration))
    logger.info("calibration: %s", summary.describe())
    for reason, message in summary.first_skip.items():
        logger.info("calibration: skipped for %s, e.g. %s", reason, message)
    return samples, summary


def iter_samples(calib_data: Any, processor: Any, summary: CalibrationSummary,
                 calibration: CalibrationConfig = CalibrationConfig()) -> Iterator[CalibrationSample]:
    """``build_samples`` as a generator: one sample processed at a time; ``summary`` is
    filled in as it goes. Raises at the end if no sample was usable."""
    c = calibration
    limits = Limits(min_pixels=c.min_pixels, max_pixels=c.max_pixels, max_frames=c.max_frames, fps=c.fps,
                    max_visual_tokens=c.max_visual_tokens, max_length=c.max_length, truncate=c.truncate_long_samples)
    special = SpecialIds.of(processor)
    sources = open_sources(calib_data)
    summary.requested = c.num_samples
    summary.available = sum(len(source) for source in sources) if isinstance(sources, list) else None
    for where, label, load in _candidates(sources, c.num_samples, c.seed, c.shuffle):
        try:
            record = load()
            if is_processor_output(record):
                processed = process_ready(record, processor, limits)
            else:
                processed = process_conversation(record, processor, limits)
        except CalibrationDataError as exc:
            located = exc.located(where)
            if not c.skip_bad_samples:
                if located is exc:
                    raise
                raise located from exc
            logger.warning("skipping bad calibration sample: %s", located)
            summary.skip(exc.reason, str(located))
            continue
        except SampleSkipped as exc:
            logger.info("skipping calibration sample %s: %s", where, exc)
            summary.skip(exc.reason, f"{where}: {exc}")
            continue
        summary.add(label, count_tokens(processed.inputs, special), processed.truncated, processed.downscaled)
        yield CalibrationSample(processed.inputs, name=where, source=label)
        if c.num_samples is not None and summary.samples >= c.num_samples:
            break
    if summary.samples == 0:
        raise CalibrationDataError(f"no usable calibration samples ({summary.describe()})")


def _candidates(sources: Any, num_samples: int | None, seed: int,
                shuffle: bool) -> Iterator[tuple[str, str, Callable[[], Any]]]:
    """(where, source label, load) in the order samples are tried (see the module docstring)."""
    if not isinstance(sources, list):
        for where, load in sources:
            yield where, sources.label, load
        return
    starts, total = [], 0
    for source in sources:
        starts.append(total)
        total += len(source)
    if total == 0:
        raise CalibrationDataError("calibration data is empty")
    order: list[int] = list(range(total))
    if shuffle or (num_samples is not None and num_samples < total):
        permutation = random.Random(seed).sample(range(total), total)
        if shuffle:
            order = permutation
        else:
            order = sorted(permutation[:num_samples]) + permutation[num_samples:]
    for position in order:
        k = bisect.bisect_right(starts, position) - 1
        source: Source = sources[k]
        index = position - starts[k]
        yield source.where(index), source.label, partial(source.load, index)
