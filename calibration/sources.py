"""Where calibration samples come from: one ``calib_data`` value -> indexed sources.

``open_sources`` dispatches on the value:

- ``None``: the built-in offline set (calibration/builtin/builtin.jsonl);
- a path to a ``.jsonl`` file (one record per line) or a ``.json`` file (a list of records,
  or one conversation); each record is a Qwen2-VL conversation (conversations.py) or a
  ShareGPT-style record (sharegpt.py), detected per record, so one file may mix them;
- a path to a folder: a Hugging Face ``datasets`` folder written by ``save_to_disk`` (it has
  ``dataset_info.json``, ``state.json`` or ``dataset_dict.json``), else a folder of images
  (``image_folder.py``);
- an ``"hf:NAME_OR_PATH?split=...&image=...&question=...&answer=..."`` spec, an ``HFDataset``,
  or a ``datasets.Dataset`` object (hf.py);
- a list of such paths / specs: several sources, counted separately in the summary;
- a list of records (conversations, ShareGPT records, processor outputs), or one record;
- processor outputs (a mapping with ``input_ids``), used as they are;
- any other iterable (e.g. a generator): read lazily in order, see ``StreamSource``.

A source is indexable, so that the selection of ``num_samples`` out of many is made from
indices before anything is read: only the chosen records are ever parsed or decoded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from .errors import CalibrationDataError, Reason
from .hf import HF_PREFIX, HFDataset, HFSource, is_datasets_folder, is_datasets_object, open_hf
from .image_folder import ImageFolderSource
from .records import is_processor_output, record_to_conversation

BUILTIN_FILE = Path(__file__).with_name("builtin") / "builtin.jsonl"


class Source(Protocol):
    """Indexed calibration records. ``load`` returns a checked Qwen2-VL conversation (media
    paths absolute) or processor outputs, or raises CalibrationDataError (not yet located)."""

    label: str

    def __len__(self) -> int: ...

    def where(self, index: int) -> str: ...

    def load(self, index: int) -> Any: ...


def open_sources(calib_data: Any) -> list[Source] | Stream:
    """The sources of ``calib_data`` (see the module docstring); an iterator gives a stream."""
    if calib_data is None:
        return [JsonFileSource(BUILTIN_FILE, label="builtin")]
    if _is_source_ref(calib_data) or is_datasets_object(calib_data):
        return _sized_or_stream([_open_ref(calib_data)])
    if isinstance(calib_data, Mapping):
        return [ListSource([calib_data], label="processor outputs" if is_processor_output(calib_data) else "record")]
    if isinstance(calib_data, (list, tuple)):
        if calib_data and all(_is_source_ref(item) or is_datasets_object(item) for item in calib_data):
            return _sized_or_stream([_open_ref(item) for item in calib_data])
        if any(_is_source_ref(item) for item in calib_data):
            raise CalibrationDataError("calibration data mixes paths or specs with records; give one kind")
        if calib_data and all(isinstance(m, Mapping) and "role" in m for m in calib_data):
            calib_data = [list(calib_data)]  # one conversation given as its list of messages
        return [ListSource(list(calib_data), label="list")]
    if isinstance(calib_data, Iterable):
        return StreamSource(iter(calib_data))
    raise CalibrationDataError(f"unsupported calibration data of type {type(calib_data).__name__}")


class JsonFileSource:
    """A .jsonl (one record per line; only line offsets are kept in memory) or .json file."""

    def __init__(self, path: str | Path, label: str | None = None) -> None:
        self.path = Path(path)
        self.label = label or str(path)
        if not self.path.is_file():
            raise CalibrationDataError(f"calibration file not found: {self.path}", Reason.MISSING_FILE)
        if self.path.suffix == ".jsonl":
            self._lines = _line_offsets(self.path)
            self._records = None
        elif self.path.suffix == ".json":
            self._lines = None
            self._records = _read_json_list(self.path)
        else:
            raise CalibrationDataError(f"{self.path}: calibration files must end in .jsonl or .json")
        if len(self) == 0:
            raise CalibrationDataError(f"{self.path}: holds no conversations", Reason.EMPTY)

    def __len__(self) -> int:
        return len(self._lines) if self._lines is not None else len(self._records)

    def where(self, index: int) -> str:
        if self._lines is not None:
            return f"{self.path.name}:{self._lines[index][0]}"
        return f"{self.path.name}[{index}]"

    def load(self, index: int) -> Any:
        if self._records is not None:
            return record_to_conversation(self._records[index], self.path.parent)
        _, offset = self._lines[index]
        with self.path.open("rb") as f:
            f.seek(offset)
            line = f.readline()
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CalibrationDataError(f"not valid JSON ({exc})", Reason.INVALID_JSON) from exc
        return record_to_conversation(record, self.path.parent)


class ListSource:
    """Records given in memory; relative media paths are left to the current directory."""

    def __init__(self, records: list[Any], label: str) -> None:
        self._records = records
        self.label = label

    def __len__(self) -> int:
        return len(self._records)

    def where(self, index: int) -> str:
        return f"sample {index}"

    def load(self, index: int) -> Any:
        return record_to_conversation(self._records[index], None)


class Stream(Protocol):
    """Records without a length, read in order: yields (where, load) with ``load()`` doing
    what ``Source.load`` does. ``num_samples`` takes the first usable ones; ``seed`` and
    ``shuffle`` do not apply (choosing would mean reading everything first)."""

    label: str

    def __iter__(self) -> Iterator[tuple[str, Callable[[], Any]]]: ...


class StreamSource:
    """An iterator of records (e.g. a generator), one record in memory at a time."""

    label = "stream"

    def __init__(self, records: Iterator[Any]) -> None:
        self._records = records

    def __iter__(self) -> Iterator[tuple[str, Callable[[], Any]]]:
        for index, record in enumerate(self._records):
            yield f"sample {index}", (lambda record=record: record_to_conversation(record, None))


def _is_source_ref(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike, HFDataset))


def _sized_or_stream(sources: list[Source | Stream]) -> list[Source] | Stream:
    streams = [s for s in sources if not hasattr(s, "__len__")]
    if not streams:
        return sources
    if len(sources) > 1:
        raise CalibrationDataError(f"a streamed data set ({streams[0].label}) must be the only calibration source")
    return streams[0]


def _open_ref(ref: Any) -> Source | Stream:
    if is_datasets_object(ref):
        return HFSource.from_dataset(ref)
    if isinstance(ref, HFDataset):
        return open_hf(ref)
    text = os.fspath(ref)
    if text.startswith(HF_PREFIX):
        return open_hf(HFDataset.parse(text))
    path = Path(text)
    if path.is_dir():
        if is_datasets_folder(path):
            return open_hf(HFDataset(str(path)))
        return ImageFolderSource(path)
    return JsonFileSource(path)


def _line_offsets(path: Path) -> list[tuple[int, int]]:
    """(line number, byte offset) of every non-blank line."""
    offsets, offset = [], 0
    try:
        with path.open("rb") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    offsets.append((number, offset))
                offset += len(line)
    except OSError as exc:
        raise CalibrationDataError(f"cannot read calibration file {path}: {exc}", Reason.MISSING_FILE) from exc
    return offsets


def _read_json_list(path: Path) -> list[Any]:
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationDataError(f"cannot read calibration file {path}: {exc}", Reason.INVALID_JSON) from exc
    except json.JSONDecodeError as exc:
        raise CalibrationDataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})",
                                   Reason.INVALID_JSON) from exc
    if isinstance(records, list) and records and all(isinstance(m, dict) and "role" in m for m in records):
        return [records]  # one conversation
    if not isinstance(records, list):
        raise CalibrationDataError(f"{path}: expected a JSON list of conversations")
    return records
