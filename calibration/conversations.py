"""The Qwen2-VL message format: checking a conversation and normalizing its media items.

A conversation is a list of messages, as in the Qwen2-VL README ("Quantize Your Own Model")
and qwen-vl-utils:

    [{"role": "system", "content": "You are a helpful assistant."},
     {"role": "user", "content": [
         {"type": "image", "image": "file:///path/a.jpg"},
         {"type": "image", "image": "data:image/png;base64,iVBOR..."},
         {"type": "video", "video": "clips/b.mp4", "fps": 1.0, "max_frames": 8},
         {"type": "video", "video": ["f0.jpg", "f1.jpg", "f2.jpg", "f3.jpg"], "fps": 2.0},
         {"type": "text", "text": "What happens here?"}]},
     {"role": "assistant", "content": "A receipt..."}]

A message's content is a string or a list of items. Item types: ``text``, ``image`` (also
the OpenAI-style ``{"type": "image_url", "image_url": {"url": ...}}`` and qwen-vl-utils'
``{"image": ...}`` without a type) and ``video`` (a file, a folder of frames, or a list of
frames). Optional per item, as in qwen-vl-utils: ``min_pixels`` / ``max_pixels`` (images and
video frames) and ``fps`` / ``max_frames`` (videos; for a frame list ``fps`` is its own rate).
A record ``{"messages": [...]}`` is accepted for a list of messages.

Relative media paths are resolved against the folder of the file they came from, so a data
set can be moved as a whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import CalibrationDataError, Reason

Conversation = list[dict[str, Any]]
ROLES = ("system", "user", "assistant")
MEDIA_TYPES = ("image", "video")
ITEM_OPTIONS = ("min_pixels", "max_pixels", "fps", "max_frames")


def check_conversation(conversation: Any) -> Conversation:
    """A normalized copy of ``conversation``, or a CalibrationDataError saying what is wrong.

    The caller adds where the sample came from (``CalibrationDataError.located``).
    """
    if isinstance(conversation, dict) and "messages" in conversation:
        conversation = conversation["messages"]
    if isinstance(conversation, list) and not conversation:
        raise CalibrationDataError("a conversation must be a non-empty list of messages", Reason.EMPTY)
    if not isinstance(conversation, list):
        raise CalibrationDataError(
            f"a conversation must be a non-empty list of messages, got {type(conversation).__name__}"
        )
    checked = []
    for m, message in enumerate(conversation):
        if not isinstance(message, dict) or message.get("role") not in ROLES or "content" not in message:
            raise CalibrationDataError(f"message {m}: needs a role in {ROLES} and a content")
        content = message["content"]
        if not isinstance(content, str):
            if not isinstance(content, list) or not content:
                raise CalibrationDataError(f"message {m}: content must be a string or a non-empty list of items")
            content = [_check_item(item, m) for item in content]
        checked.append({"role": message["role"], "content": content})
    if all(_is_empty(message["content"]) for message in checked):
        raise CalibrationDataError("the conversation has no text, image or video", Reason.EMPTY)
    return checked


def resolve_media_paths(conversation: Conversation, base: Path) -> Conversation:
    """Copy of ``conversation`` with relative media paths made absolute against ``base``."""
    resolved = []
    for message in conversation:
        content = message["content"]
        if isinstance(content, list):
            content = [_resolve_item(item, base) for item in content]
        resolved.append({**message, "content": content})
    return resolved


def media_items(conversation: Conversation) -> list[dict[str, Any]]:
    """The image and video items of ``conversation`` in order (the order of their placeholders)."""
    return [item for message in conversation if isinstance(message["content"], list)
            for item in message["content"] if item["type"] in MEDIA_TYPES]


def _check_item(item: Any, m: int) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise CalibrationDataError(f"message {m}: content items must be objects, got {type(item).__name__}")
    kind = item.get("type")
    if kind == "image_url" or (kind is None and "image_url" in item):
        url = item.get("image_url")
        url = url.get("url") if isinstance(url, dict) else url
        item = {**{k: v for k, v in item.items() if k != "image_url"}, "type": "image", "image": url}
        kind = "image"
    elif kind is None:
        kind = next((k for k in ("text", *MEDIA_TYPES) if k in item), None)
        item = {**item, "type": kind}
    if kind == "text":
        if not isinstance(item.get("text"), str):
            raise CalibrationDataError(f"message {m}: text item without a string 'text'")
        return {"type": "text", "text": item["text"]}
    if kind in MEDIA_TYPES:
        if item.get(kind) is None or (isinstance(item[kind], (str, list)) and not item[kind]):
            raise CalibrationDataError(f"message {m}: {kind} item without a {kind!r} value")
        options = {k: item[k] for k in ITEM_OPTIONS if item.get(k) is not None}
        for key, value in options.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise CalibrationDataError(f"message {m}: {kind} option {key!r} must be a positive number")
        return {"type": kind, kind: item[kind], **options}
    raise CalibrationDataError(
        f"message {m}: unsupported content type {kind!r} (use text, image or video)", Reason.UNSUPPORTED
    )


def _is_empty(content: str | list[dict[str, Any]]) -> bool:
    if isinstance(content, str):
        return not content.strip()
    return all(item["type"] == "text" and not item["text"].strip() for item in content)


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
