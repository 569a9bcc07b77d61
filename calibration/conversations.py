"""Calibration conversations: reading them from files and checking their shape.

A conversation is a list of messages in the Qwen2-VL format (Qwen2-VL README,
"Quantize Your Own Model"):

    [{"role": "system", "content": "You are a helpful assistant."},
     {"role": "user", "content": [{"type": "image", "image": "file:///path/a.jpg"},
                                  {"type": "video", "video": ["f0.jpg", "f1.jpg"], "fps": 2.0},
                                  {"type": "text", "text": "What is on the page?"}]},
     {"role": "assistant", "content": "A receipt..."}]

Files: ``.jsonl`` (one conversation per line) or ``.json`` (a list of conversations).
Relative media paths are resolved against the file's folder, so a data set can be moved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import CalibrationDataError

Conversation = list[dict[str, Any]]
ROLES = ("system", "user", "assistant")
MEDIA_TYPES = ("image", "video")


def load_conversations(path: str | Path) -> list[Conversation]:
    """Read a .jsonl or .json calibration file; media paths become absolute."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationDataError(f"calibration file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationDataError(f"cannot read calibration file {path}: {exc}") from exc
    if path.suffix == ".jsonl":
        conversations = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                conversations.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise CalibrationDataError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
    elif path.suffix == ".json":
        try:
            conversations = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CalibrationDataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
        if not isinstance(conversations, list):
            raise CalibrationDataError(f"{path}: expected a JSON list of conversations")
    else:
        raise CalibrationDataError(f"{path}: calibration files must end in .jsonl or .json")
    if not conversations:
        raise CalibrationDataError(f"{path}: holds no conversations")
    return [resolve_media_paths(check_conversation(c, f"{path.name}[{i}]"), path.parent) for i, c in enumerate(conversations)]


def check_conversation(conversation: Any, where: str) -> Conversation:
    """Raise a CalibrationDataError naming ``where`` unless ``conversation`` is well formed."""
    if isinstance(conversation, dict) and "messages" in conversation:
        conversation = conversation["messages"]
    if not isinstance(conversation, list) or not conversation:
        raise CalibrationDataError(f"sample {where}: a conversation must be a non-empty list of messages")
    for m, message in enumerate(conversation):
        if not isinstance(message, dict) or message.get("role") not in ROLES or "content" not in message:
            raise CalibrationDataError(f"sample {where}, message {m}: needs a role in {ROLES} and a content")
        content = message["content"]
        if isinstance(content, str):
            continue
        if not isinstance(content, list) or not content:
            raise CalibrationDataError(f"sample {where}, message {m}: content must be a string or a list of items")
        for item in content:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "text":
                if not isinstance(item.get("text"), str):
                    raise CalibrationDataError(f"sample {where}, message {m}: text item without a string 'text'")
            elif kind in MEDIA_TYPES:
                if not item.get(kind):
                    raise CalibrationDataError(f"sample {where}, message {m}: {kind} item without a {kind!r} value")
            else:
                raise CalibrationDataError(
                    f"sample {where}, message {m}: unsupported content type {kind!r} (use text, image or video)"
                )
    return conversation


def resolve_media_paths(conversation: Conversation, base: Path) -> Conversation:
    """Copy of ``conversation`` with relative media paths made absolute against ``base``."""
    resolved = []
    for message in conversation:
        content = message["content"]
        if isinstance(content, list):
            content = [_resolve_item(item, base) for item in content]
        resolved.append({**message, "content": content})
    return resolved


def _resolve_item(item: dict[str, Any], base: Path) -> dict[str, Any]:
    kind = item.get("type")
    if kind not in MEDIA_TYPES:
        return item
    value = item[kind]
    if isinstance(value, list):
        return {**item, kind: [_resolve_path(v, base) for v in value]}
    return {**item, kind: _resolve_path(value, base)}


def _resolve_path(value: Any, base: Path) -> Any:
    if not isinstance(value, str) or "://" in value or value.startswith("data:"):
        return value
    path = Path(value)
    return str(path if path.is_absolute() else (base / path).resolve())
