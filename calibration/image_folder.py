"""A folder of images as calibration data: one single-image conversation per image.

Layout (all optional except the images; searched recursively, hidden entries ignored,
ordered by relative path):

    photos/
      a.jpg                    any of .jpg .jpeg .png .webp .bmp .gif .tif .tiff
      a.txt                    sidecar caption for a.jpg (plain text)
      sub/b.png
      metadata.jsonl           or captions.jsonl: one object per line,
                               {"file_name": "sub/b.png", "text": "A red square."}
                               ("file"/"image" for the name; "caption"/"answer"/"text" for the
                               caption; an optional "question")

``metadata.jsonl`` with ``file_name`` is the Hugging Face ``imagefolder`` convention, so the
same folder works with ``datasets.load_dataset("imagefolder", ...)``. A caption from a
jsonl file wins over a sidecar ``.txt``. Each image becomes

    user: [image, question or "Describe this image."]
    assistant: caption, or "Here is a description of the image." when there is none

The generic answer only gives the language model an assistant turn to calibrate on; the
image tokens, the part that matters most for a vision-language model, are the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import CalibrationDataError, Reason

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
CAPTION_FILES = ("metadata.jsonl", "captions.jsonl")
NAME_KEYS = ("file_name", "file", "image")
CAPTION_KEYS = ("caption", "answer", "text")
GENERIC_QUESTION = "Describe this image."
GENERIC_ANSWER = "Here is a description of the image."


class ImageFolderSource:
    """Images under ``folder``, each paired with its caption (see the module docstring)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.label = str(folder)
        self._images = sorted(
            (p for p in self.folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(self.folder).parts)),
            key=lambda p: p.relative_to(self.folder).as_posix(),
        )
        if not self._images:
            raise CalibrationDataError(
                f"{self.folder}: no images ({', '.join(IMAGE_SUFFIXES)}) and not a datasets save_to_disk folder",
                Reason.MISSING_FILE,
            )
        self._captions = _read_caption_files(self.folder)

    def __len__(self) -> int:
        return len(self._images)

    def where(self, index: int) -> str:
        return f"{self.folder.name}/{self._images[index].relative_to(self.folder).as_posix()}"

    def load(self, index: int) -> Any:
        image = self._images[index]
        entry = self._captions.get(image.relative_to(self.folder).as_posix(), {})
        caption = entry.get("caption")
        sidecar = image.with_suffix(".txt")
        if caption is None and sidecar.is_file():
            caption = sidecar.read_text(encoding="utf-8", errors="replace").strip() or None
        question = entry.get("question") or GENERIC_QUESTION
        return [
            {"role": "user", "content": [{"type": "image", "image": str(image.resolve())},
                                         {"type": "text", "text": question}]},
            {"role": "assistant", "content": caption or GENERIC_ANSWER},
        ]


def _read_caption_files(folder: Path) -> dict[str, dict[str, str]]:
    """relative image path -> {"caption": ..., "question": ...} from the jsonl caption files."""
    captions: dict[str, dict[str, str]] = {}
    for name in CAPTION_FILES:
        path = folder / name
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CalibrationDataError(f"{path}:{number}: not valid JSON ({exc.msg})", Reason.INVALID_JSON) from exc
            if not isinstance(entry, dict):
                raise CalibrationDataError(f"{path}:{number}: expected a JSON object")
            file_name = next((entry[k] for k in NAME_KEYS if isinstance(entry.get(k), str)), None)
            if file_name is None:
                raise CalibrationDataError(f"{path}:{number}: needs a file name ({' / '.join(NAME_KEYS)})")
            caption = next((entry[k] for k in CAPTION_KEYS if isinstance(entry.get(k), str)), None)
            captions[Path(file_name).as_posix()] = {"caption": caption, "question": entry.get("question")}
    return captions
