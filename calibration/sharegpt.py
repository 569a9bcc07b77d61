"""The ShareGPT-style multimodal format of fine-tuning tools, converted to Qwen2-VL messages.

LLaMA-Factory's format (data/README.md, "sharegpt" formatting), in either spelling:

    {"messages": [{"role": "user", "content": "<image>Who is in the picture?"},
                  {"role": "assistant", "content": "Two players..."}],
     "images": ["pictures/1.jpg"]}

    {"conversations": [{"from": "human", "value": "<video>What happens?"},
                       {"from": "gpt", "value": "A ball rolls..."}],
     "system": "You are a helpful assistant.",
     "videos": ["clips/1.mp4"]}

Each ``<image>`` / ``<video>`` placeholder in the text takes the next entry of ``images`` /
``videos`` (in order over the whole conversation; the counts must match). A video entry is a
file or a list of frame paths. Roles: user/human, assistant/gpt, system (also a top-level
``system`` field). Tool-calling turns (function_call, observation) and ``<audio>`` are not
supported and are reported as such. Relative paths are resolved against the data file's
folder by the caller.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import CalibrationDataError, Reason

PLACEHOLDER = re.compile(r"(<image>|<video>|<audio>)")
ROLE_NAMES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant", "system": "system"}
MEDIA_KEYS = {"<image>": ("images", "image"), "<video>": ("videos", "video")}


def is_sharegpt(record: Any) -> bool:
    """True for a ShareGPT-style record rather than a Qwen2-VL conversation.

    ``conversations`` (from/value) is always ShareGPT. ``messages`` is ShareGPT when the
    record carries ``images`` / ``videos`` lists or any message's content is a plain string
    with a placeholder; a text-only ``messages`` record reads the same in both formats.
    """
    if not isinstance(record, dict):
        return False
    if "conversations" in record:
        return True
    if "messages" not in record:
        return False
    if "images" in record or "videos" in record:
        return True
    messages = record["messages"]
    return isinstance(messages, list) and any(
        isinstance(m, dict) and isinstance(m.get("content"), str) and PLACEHOLDER.search(m["content"])
        for m in messages
    )


def sharegpt_to_conversation(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Qwen2-VL messages for one ShareGPT-style record (see the module docstring)."""
    messages = record.get("conversations", record.get("messages"))
    if not isinstance(messages, list) or not messages:
        raise CalibrationDataError("a ShareGPT record needs a non-empty 'messages' or 'conversations' list",
                                   Reason.EMPTY if messages == [] else Reason.INVALID_FORMAT)
    media = {tag: list(_as_list(record.get(key), key)) for tag, (key, _) in MEDIA_KEYS.items()}
    used = {tag: 0 for tag in MEDIA_KEYS}
    conversation: list[dict[str, Any]] = []
    if isinstance(record.get("system"), str) and record["system"].strip():
        conversation.append({"role": "system", "content": record["system"]})
    for m, message in enumerate(messages):
        if not isinstance(message, dict):
            raise CalibrationDataError(f"message {m}: expected an object, got {type(message).__name__}")
        role = message.get("role", message.get("from"))
        text = message.get("content", message.get("value"))
        if role not in ROLE_NAMES:
            raise CalibrationDataError(
                f"message {m}: unsupported role {role!r} (use user/human, assistant/gpt or system)",
                Reason.UNSUPPORTED,
            )
        if not isinstance(text, str):
            raise CalibrationDataError(f"message {m}: content/value must be a string with <image>/<video> placeholders")
        conversation.append({"role": ROLE_NAMES[role], "content": _items(text, media, used, m)})
    for tag, (key, _) in MEDIA_KEYS.items():
        if used[tag] != len(media[tag]):
            raise CalibrationDataError(
                f"{used[tag]} {tag} placeholders but {len(media[tag])} entries in {key!r}", Reason.INVALID_FORMAT
            )
    return conversation


def _items(text: str, media: dict[str, list[Any]], used: dict[str, int], m: int) -> str | list[dict[str, Any]]:
    parts = PLACEHOLDER.split(text)
    if len(parts) == 1:
        return text
    items: list[dict[str, Any]] = []
    for part in parts:
        if part == "<audio>":
            raise CalibrationDataError(f"message {m}: <audio> is not supported by Qwen2-VL", Reason.UNSUPPORTED)
        if part in MEDIA_KEYS:
            key, kind = MEDIA_KEYS[part]
            if used[part] >= len(media[part]):
                raise CalibrationDataError(f"message {m}: more {part} placeholders than entries in {key!r}")
            items.append({"type": kind, kind: media[part][used[part]]})
            used[part] += 1
        elif part.strip():
            items.append({"type": "text", "text": part})
    return items


def _as_list(value: Any, key: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    raise CalibrationDataError(f"{key!r} must be a list, got {type(value).__name__}")
