"""Hugging Face ``datasets`` as calibration data, with a column mapping.

One spec serves the CLI and the API:

    --calib "hf:lmms-lab/VQAv2?split=validation&image=image&question=question&answer=multiple_choice_answer"
    --calib "hf:/data/my_set"                      a folder written by Dataset.save_to_disk
    quantize(model, HFDataset("/data/my_set", split="train", image="img", question="q", answer="a"))
    quantize(model, my_dataset_object)             a datasets.Dataset in memory

``NAME_OR_PATH`` is a folder written by ``save_to_disk`` (read with ``load_from_disk``), any
other folder of data files, or a name on the Hub (``load_dataset``; that needs the network
and fails with a clear message offline). Spec keys (all optional):

    split      the split (default: "train", or the only one a saved DatasetDict has)
    config     the dataset's configuration name (load_dataset's ``name``)
    image      column of images: PIL images (an Image feature), paths/URLs, or lists of them
    question   column of questions (default "Describe this image." for image rows)
    answer     column of answers; a list takes its first entry, a dict its "answer"/"text"
    messages   column of conversations, Qwen2-VL or ShareGPT style; the row's ``images`` /
               ``videos`` / ``system`` columns feed its placeholders (LLaMA-Factory's layout)
    streaming  "true": read a Hub dataset row by row instead of downloading it whole
               (then the first num_samples usable rows are taken; seed and shuffle don't apply)

Without a mapping the columns are guessed: ``messages``/``conversations``; else the first
present of image/images/img/picture, question/query/prompt/instruction and
answer/answers/response/output/caption/text. Only the rows chosen for calibration are read
(datasets decodes an image column row by row), so a large set costs nothing up front.

``datasets`` is optional (``pip install 'qwen2vl-quant[datasets]'``) and imported only here.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from .errors import CalibrationDataError, CalibrationError
from .image_folder import GENERIC_ANSWER, GENERIC_QUESTION
from .records import record_to_conversation

HF_PREFIX = "hf:"
DATASETS_FOLDER_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
GUESSES = {
    "messages": ("messages", "conversations"),
    "image": ("image", "images", "img", "picture"),
    "question": ("question", "query", "prompt", "instruction"),
    "answer": ("answer", "answers", "response", "output", "caption", "text"),
}
INSTALL_HINT = "pip install 'qwen2vl-quant[datasets]'"


@dataclass(frozen=True)
class HFDataset:
    """A Hugging Face dataset and which of its columns hold what (see the module docstring)."""

    path: str
    split: str | None = None
    config: str | None = None
    image: str | None = None
    question: str | None = None
    answer: str | None = None
    messages: str | None = None
    streaming: bool = False

    def __post_init__(self) -> None:
        if not self.path:
            raise CalibrationDataError("an hf: spec needs a dataset name or path, e.g. hf:user/name?split=train")

    @classmethod
    def parse(cls, spec: str) -> "HFDataset":
        """``hf:NAME_OR_PATH?key=value&...`` -> HFDataset; unknown keys are an error."""
        body = spec[len(HF_PREFIX):] if spec.startswith(HF_PREFIX) else spec
        path, _, query = body.partition("?")
        options: dict[str, Any] = {}
        known = [f.name for f in dataclasses.fields(cls) if f.name != "path"]
        for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
            if key not in known:
                raise CalibrationDataError(f"unknown key {key!r} in {spec!r}; known: {', '.join(known)}")
            options[key] = value.lower() in ("1", "true", "yes") if key == "streaming" else value
        return cls(urllib.parse.unquote(path), **options)

    @property
    def label(self) -> str:
        return f"{HF_PREFIX}{self.path}" + (f" ({self.split})" if self.split else "")


class HFSource:
    """Rows of a ``datasets.Dataset`` read by index, each mapped to a conversation."""

    def __init__(self, spec: HFDataset, dataset: Any = None) -> None:
        self.spec = spec
        self.label = spec.label
        self._dataset = dataset if dataset is not None else load(spec)
        self._columns = resolve_columns(spec, list(self._dataset.column_names or []), spec.label)

    @classmethod
    def from_dataset(cls, dataset: Any, spec: HFDataset | None = None) -> "HFSource | HFStream":
        dataset = _pick_split(dataset, spec.split if spec else None, "the dataset")
        spec = spec or HFDataset(getattr(getattr(dataset, "info", None), "dataset_name", None) or "dataset")
        if not hasattr(dataset, "__len__"):
            return HFStream(spec, dataset)
        return cls(spec, dataset)

    def __len__(self) -> int:
        return len(self._dataset)

    def where(self, index: int) -> str:
        return f"{self.label}[{index}]"

    def load(self, index: int) -> Any:
        return _row_conversation(self._dataset[index], self._columns)


class HFStream:
    """A streamed (``IterableDataset``) dataset: rows in order, no length."""

    def __init__(self, spec: HFDataset, dataset: Any) -> None:
        self.label = spec.label
        self._dataset = dataset
        columns = list(dataset.column_names or [])  # unknown for some streamed sets: then per row
        self._columns = resolve_columns(spec, columns, spec.label) if columns else None
        self._spec = spec

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        for index, row in enumerate(self._dataset):
            columns = self._columns or resolve_columns(self._spec, list(row), self.label)
            yield f"{self.label}[{index}]", partial(_row_conversation, row, columns)


def open_hf(spec: HFDataset) -> "HFSource | HFStream":
    dataset = load(spec)
    if spec.streaming or not hasattr(dataset, "__len__"):
        return HFStream(spec, dataset)
    return HFSource(spec, dataset)


def load(spec: HFDataset) -> Any:
    """The dataset (one split) that ``spec`` names; a clear CalibrationDataError if it cannot be had."""
    datasets = _import_datasets()
    path = Path(spec.path).expanduser()
    try:
        if path.is_dir() and is_datasets_folder(path):
            dataset = datasets.load_from_disk(str(path))
        else:
            dataset = datasets.load_dataset(str(path) if path.exists() else spec.path, spec.config,
                                            split=spec.split or "train", streaming=spec.streaming)
    except (OSError, ValueError, KeyError) as exc:
        where = "the folder" if path.exists() else "the Hub (no network? give a local folder saved with save_to_disk)"
        raise CalibrationDataError(f"cannot load dataset {spec.path!r} from {where}: {exc}") from exc
    return _pick_split(dataset, spec.split, repr(spec.path))


def is_datasets_folder(path: Path) -> bool:
    return any((path / marker).is_file() for marker in DATASETS_FOLDER_MARKERS)


def is_datasets_object(value: Any) -> bool:
    return type(value).__module__.split(".")[0] == "datasets" and hasattr(value, "column_names")


def resolve_columns(spec: HFDataset, columns: list[str], label: str) -> dict[str, str | None]:
    """role -> column name, from the spec or guessed; an error names the missing column."""
    chosen: dict[str, str | None] = {}
    for role in GUESSES:
        given = getattr(spec, role)
        if given is not None and given not in columns:
            raise CalibrationDataError(f"{label}: no column {given!r} for {role}; columns: {', '.join(columns)}")
        chosen[role] = given
    explicit = any(chosen[r] for r in ("image", "question", "answer"))
    if chosen["messages"] is None and not explicit:
        chosen["messages"] = next((c for c in GUESSES["messages"] if c in columns), None)
    if chosen["messages"] is None:
        for role in ("image", "question", "answer"):
            if chosen[role] is None and not explicit:
                chosen[role] = next((c for c in GUESSES[role] if c in columns), None)
        if not any(chosen[r] for r in ("image", "question", "answer")):
            raise CalibrationDataError(
                f"{label}: cannot tell which columns hold images, questions and answers (columns: "
                f"{', '.join(columns)}); name them, e.g. ?image=COL&question=COL&answer=COL"
            )
    return chosen


def row_to_record(row: Mapping[str, Any], columns: dict[str, str | None]) -> Any:
    """One dataset row -> a Qwen2-VL conversation or a ShareGPT record (checked by the caller)."""
    if columns["messages"]:
        messages = row[columns["messages"]]
        if isinstance(messages, list) and messages and isinstance(messages[0], Mapping) and "from" in messages[0]:
            key = "conversations"
        else:
            key = "messages"
        record = {key: messages}
        for extra in ("images", "videos", "system"):
            if row.get(extra) is not None:
                record[extra] = row[extra]
        return record
    images = row[columns["image"]] if columns["image"] else None
    images = [] if images is None else images if isinstance(images, list) else [images]
    question = _text(row[columns["question"]]) if columns["question"] else None
    answer = _text(row[columns["answer"]]) if columns["answer"] else None
    if not images and not question:
        raise CalibrationDataError("row has neither an image nor a question")
    content = [{"type": "image", "image": image} for image in images]
    content.append({"type": "text", "text": question or GENERIC_QUESTION})
    return [{"role": "user", "content": content},
            {"role": "assistant", "content": answer or GENERIC_ANSWER}]


def _row_conversation(row: Mapping[str, Any], columns: dict[str, str | None]) -> Any:
    return record_to_conversation(row_to_record(row, columns), None)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return next((t for t in map(_text, value) if t), None)
    if isinstance(value, Mapping):
        return _text(value.get("answer", value.get("text")))
    return str(value)


def _pick_split(dataset: Any, split: str | None, name: str) -> Any:
    if not (isinstance(dataset, Mapping) or type(dataset).__name__.endswith("DatasetDict")):
        return dataset
    splits = list(dataset.keys())
    if split is None:
        split = "train" if "train" in splits else splits[0] if len(splits) == 1 else None
    if split not in splits:
        raise CalibrationDataError(f"{name} has splits {', '.join(splits)}; choose one with split=NAME")
    return dataset[split]


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise CalibrationError(
            f"Hugging Face datasets as calibration data need the 'datasets' package ({INSTALL_HINT})"
        ) from exc
    return datasets
