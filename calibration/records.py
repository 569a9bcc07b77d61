"""One calibration record -> what the sample builder consumes.

A record is a Qwen2-VL conversation (conversations.py), a ShareGPT-style record
(sharegpt.py; detected per record, so one file may mix the two) or ready processor outputs
(a mapping with ``input_ids``, used as they are).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .conversations import check_conversation, resolve_media_paths
from .sharegpt import is_sharegpt, sharegpt_to_conversation


def is_processor_output(item: Any) -> bool:
    return isinstance(item, Mapping) and "input_ids" in item


def record_to_conversation(record: Any, base: Path | None) -> Any:
    """Processor outputs as they are; anything else -> a checked Qwen2-VL conversation whose
    relative media paths are resolved against ``base`` (left alone when ``base`` is None)."""
    if is_processor_output(record):
        return record
    conversation = check_conversation(sharegpt_to_conversation(record) if is_sharegpt(record) else record)
    return resolve_media_paths(conversation, base) if base is not None else conversation
