"""Quality against the BF16 model, on held-out multimodal samples (never calibration ones).

Teacher-forced, on every assistant answer of the held-out conversations (each answer
token and its closing <|im_end|>):

- KL(BF16 || quantized) of the next-token distributions, mean over answer tokens (nats);
- top-1 agreement: how often both models put the same token first;
- answer perplexity: exp(mean negative log-likelihood of the reference answer tokens).

And, when a VQA file is given, accuracy of greedy answers: exact match after the usual
VQA normalization (lower case, no punctuation or articles) and ANLS (DocVQA's average
normalized Levenshtein similarity, threshold 0.5), best over the reference answers.

Accuracy alone says little: small models can be very robust to weight quantization
(DESIGN.md section 4), so KL and answer NLL are the sensitive measures.

VQA file: JSON lines ``{"image": "pics/1.png", "question": "...", "answers": ["..."]}``
("image" may be a list; paths relative to the file). Its questions also serve as the
held-out conversations (with the first answer as reference) when no ``eval_data`` is given.

The BF16 log-probabilities at the answer positions are kept (on the CPU, float32) to
compare each quantized model with: answer tokens x vocabulary x 4 bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import ConfigError, QuantError
from .models import ModelEntry, load_model, release_memory
from .paths import describe_paths, record_paths
from .speed import Runtime, greedy_config, one_line

logger = logging.getLogger(__name__)

ANSWER_HEADER = "<|im_start|>assistant\n"
END_OF_TURN = "<|im_end|>"
PER_TOKEN = ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids")  # cut with the prompt


class EvalDataError(QuantError):
    """The held-out data (conversations or VQA file) is missing, empty or malformed."""


@dataclass(frozen=True)
class QualityConfig:
    """What the quality table measures.

    eval_data: held-out conversations with answers (.jsonl / .json in the calibration file
        format); never the calibration samples.
    vqa: VQA JSON-lines file (image, question, answers); its name heads the accuracy column.
    max_samples: use the first this many conversations and VQA questions (None: all).
    min_pixels / max_pixels: pixel bounds per image (None: the processor's).
    max_length: longer samples are cut at a message boundary, as in calibration.
    max_new_tokens: generation budget of a VQA answer (greedy).
    """

    eval_data: str | None = None
    vqa: str | None = None
    max_samples: int | None = 200
    min_pixels: int | None = None
    max_pixels: int | None = None
    max_length: int = 4096
    max_new_tokens: int = 16
    anls_threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.eval_data is None and self.vqa is None:
            raise ConfigError("the quality table needs held-out data: eval_data and/or vqa")
        for name in ("eval_data", "vqa"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_file():
                raise EvalDataError(f"{name} file {value} does not exist")
        if self.max_samples is not None and self.max_samples < 1:
            raise ConfigError(f"max_samples must be at least 1, got {self.max_samples}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if not 0.0 < self.anls_threshold <= 1.0:
            raise ConfigError(f"anls_threshold must be in (0, 1], got {self.anls_threshold}")

    @property
    def vqa_name(self) -> str | None:
        return Path(self.vqa).stem if self.vqa else None


@dataclass
class EvalSample:
    """One held-out conversation, processed, with where its answers are."""

    name: str
    inputs: dict[str, torch.Tensor]
    positions: torch.Tensor  # logits at these positions predict ...
    targets: torch.Tensor  # ... these answer tokens
    prompt_length: int | None = None  # VQA: input_ids[:, :prompt_length] is the generation prompt
    answers: list[str] | None = None  # VQA reference answers


@dataclass
class QualityResult:
    """One row of the quality table."""

    quantization: str  # the model's label: BF16, GPTQ-Int4, ...
    model_dir: str
    reference: bool = False  # the BF16 model the others are compared with
    samples: int = 0
    answer_tokens: int = 0
    kl: float | None = None  # mean KL(BF16 || this model) per answer token, nats
    top1_agreement: float | None = None
    answer_nll: float | None = None
    answer_ppl: float | None = None
    vqa_questions: int = 0
    exact_match: float | None = None
    anls: float | None = None
    weight_bytes: int = 0
    kernel_path: str = ""
    seconds: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_eval_samples(config: QualityConfig, processor: Any) -> list[EvalSample]:
    """The held-out samples: eval_data conversations and VQA questions (teacher forcing uses
    both; generation the VQA ones). Raises EvalDataError on unusable data."""
    from ..calibration.batches import CalibrationSummary, iter_samples
    from ..config import CalibrationConfig
    from ..calibration.errors import CalibrationError as CalibError

    header = processor.tokenizer(ANSWER_HEADER, add_special_tokens=False)["input_ids"]
    end = processor.tokenizer.convert_tokens_to_ids(END_OF_TURN)
    samples: list[EvalSample] = []
    if config.eval_data:
        summary = CalibrationSummary()
        try:
            selection = CalibrationConfig(num_samples=config.max_samples, min_pixels=config.min_pixels,
                                          max_pixels=config.max_pixels, max_length=config.max_length)
            for sample in iter_samples(config.eval_data, processor, summary, selection):
                positions, targets, _ = answer_positions(sample.inputs["input_ids"][0], header, end)
                if len(targets):
                    samples.append(EvalSample(sample.name, sample.inputs, positions, targets))
        except CalibError as exc:
            raise EvalDataError(f"held-out data: {exc}") from exc
        if not samples:
            raise EvalDataError(f"{config.eval_data}: no conversation has an assistant answer")
    if config.vqa:
        samples += _vqa_samples(config, processor, header, end)
    return samples


def read_vqa(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The records of a VQA JSON-lines file, image paths made absolute."""
    path = Path(path)
    records = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalDataError(f"cannot read {path}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalDataError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc
        images = record.get("image") if isinstance(record, dict) else None
        question = record.get("question") if isinstance(record, dict) else None
        answers = record.get("answers", record.get("answer")) if isinstance(record, dict) else None
        answers = [answers] if isinstance(answers, str) else answers
        if not images or not isinstance(question, str) or not answers or not all(isinstance(a, str) for a in answers):
            raise EvalDataError(f"{path}:{number}: need \"image\", \"question\" and \"answers\" (a list of strings)")
        images = [images] if isinstance(images, str) else list(images)
        resolved = [str(p) if (p := Path(i)).is_absolute() or "://" in i else str(path.parent / p) for i in images]
        records.append({"images": resolved, "question": question, "answers": answers, "where": f"{path.name}:{number}"})
        if limit is not None and len(records) >= limit:
            break
    if not records:
        raise EvalDataError(f"{path} has no questions")
    return records


def vqa_conversation(record: dict[str, Any]) -> list[dict[str, Any]]:
    content = [{"type": "image", "image": image} for image in record["images"]]
    content.append({"type": "text", "text": record["question"]})
    return [{"role": "user", "content": content}, {"role": "assistant", "content": record["answers"][0]}]


def _vqa_samples(config: QualityConfig, processor: Any, header: list[int], end: int) -> list[EvalSample]:
    from ..calibration.errors import CalibrationError as CalibError
    from ..calibration.errors import SampleSkipped
    from ..calibration.process import Limits, process_conversation

    limits = Limits(min_pixels=config.min_pixels, max_pixels=config.max_pixels, max_length=config.max_length)
    samples = []
    for record in read_vqa(config.vqa, config.max_samples):
        try:
            processed = process_conversation(vqa_conversation(record), processor, limits)
        except (CalibError, SampleSkipped) as exc:
            raise EvalDataError(f"{record['where']}: {exc}") from exc
        positions, targets, start = answer_positions(processed.inputs["input_ids"][0], header, end)
        if not len(targets):
            raise EvalDataError(f"{record['where']}: the answer does not fit max_length {config.max_length}")
        samples.append(EvalSample(record["where"], processed.inputs, positions, targets, start, record["answers"]))
    return samples


def answer_positions(ids: torch.Tensor, header: list[int], end: int) -> tuple[torch.Tensor, torch.Tensor, int | None]:
    """(positions, targets, start of the last answer): every token of every assistant answer
    up to and including its <|im_end|>, and the positions whose logits predict them."""
    ids_list = ids.tolist()
    n, width = len(ids_list), len(header)
    targets: list[int] = []
    last_start = None
    i = 0
    while i <= n - width:
        if ids_list[i:i + width] != header:
            i += 1
            continue
        start = i + width
        stop = start
        while stop < n and ids_list[stop] != end:
            stop += 1
        stop = min(stop, n - 1)  # include <|im_end|>; a cut answer runs to the end
        if stop >= start:
            targets += range(start, stop + 1)
            last_start = start
        i = stop + 1
    positions = torch.tensor([t - 1 for t in targets], dtype=torch.long)
    return positions, ids[targets] if targets else torch.empty(0, dtype=ids.dtype), last_start


def run_quality(entries: list[ModelEntry], config: QualityConfig, runtime: Runtime,
                advance: Callable[[str], None] | None = None) -> list[QualityResult]:
    """Evaluate the reference (entries[0]) and then each quantized model against it, one
    model in memory at a time; a model that fails is reported in its row."""
    device = torch.device(runtime.device)
    reference: list[torch.Tensor] | None = None
    samples: list[EvalSample] | None = None
    results = []
    for entry in entries:
        if advance:
            advance(f"quality {entry.label}")
        result = QualityResult(quantization=entry.label, model_dir=entry.path, reference=entry.is_reference,
                               weight_bytes=entry.weight_bytes)
        started = time.perf_counter()
        model = None
        try:
            model, processor = load_model(entry, device, runtime.loader, runtime.attn_implementation,
                                          runtime.multi_gpu)
            if samples is None:
                samples = load_eval_samples(config, processor)
            logprobs = evaluate(model, processor, samples, reference, config, result, keep=entry.is_reference)
            if entry.is_reference:
                reference = logprobs
        except QuantError:
            raise  # bad held-out data is the user's mistake, not one model's failure
        except Exception as exc:  # noqa: BLE001 - a failed model is a row of the table, not the end
            logger.debug("quality of %s failed", entry.label, exc_info=True)
            result.error = one_line(exc)
            logger.warning("quality %s failed: %s", entry.label, result.error)
        finally:
            model = None
            release_memory()
        result.seconds = round(time.perf_counter() - started, 2)
        results.append(result)
    return results


@torch.inference_mode()
def evaluate(model: Any, processor: Any, samples: list[EvalSample], reference: list[torch.Tensor] | None,
             config: QualityConfig, result: QualityResult, keep: bool = False) -> list[torch.Tensor] | None:
    """Fill ``result`` (KL and agreement against ``reference`` when given); return this
    model's answer log-probs when ``keep`` (the reference pass)."""
    device = model.device
    kept: list[torch.Tensor] = []
    nll = kl = 0.0
    agree = tokens = 0
    exact = anls_sum = 0.0
    questions = 0
    for index, sample in enumerate(samples):
        inputs = {k: v.to(device) for k, v in sample.inputs.items()}
        with record_paths(model) if index == 0 else contextlib.nullcontext() as log:
            # Only the answer positions go through lm_head (logits_to_keep takes indices).
            logits = model(**inputs, logits_to_keep=sample.positions.to(device)).logits[0]
            logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
            answer = _answer(model, processor, inputs, sample, config) if sample.answers is not None else None
        if index == 0:
            result.kernel_path = describe_paths(model, log)
        nll -= float(logprobs.gather(1, sample.targets[:, None].long()).sum())
        tokens += len(sample.targets)
        if keep:
            kept.append(logprobs)
        if reference is not None:
            ref = reference[index]
            kl += float((ref.exp() * (ref - logprobs)).sum())
            agree += int((ref.argmax(-1) == logprobs.argmax(-1)).sum())
        if answer is not None:
            questions += 1
            exact += exact_match(answer, sample.answers)
            anls_sum += anls(answer, sample.answers, config.anls_threshold)
    result.samples, result.answer_tokens = len(samples), tokens
    result.answer_nll = nll / tokens
    result.answer_ppl = math.exp(result.answer_nll)
    if keep:
        result.kl, result.top1_agreement = 0.0, 1.0
    elif reference is not None:
        result.kl, result.top1_agreement = kl / tokens, agree / tokens
    if questions:
        result.vqa_questions, result.exact_match, result.anls = questions, exact / questions, anls_sum / questions
    return kept if keep else None


def _answer(model: Any, processor: Any, inputs: dict[str, torch.Tensor], sample: EvalSample,
            config: QualityConfig) -> str:
    """Greedy answer to the sample's question (its conversation cut before the answer)."""
    cut = sample.prompt_length
    seq = inputs["input_ids"].shape[1]
    prompt = {k: (v[:, :cut] if k in PER_TOKEN and v.shape[-1] == seq else v) for k, v in inputs.items()}
    out = model.generate(**prompt, generation_config=greedy_config(model, processor, config.max_new_tokens))
    return processor.tokenizer.decode(out[0, cut:], skip_special_tokens=True).strip()


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = re.compile(r"[^\w\s]")


def normalize_answer(text: str) -> str:
    """VQA-style: lower case, punctuation and articles removed, spaces collapsed."""
    text = _PUNCTUATION.sub(" ", text.lower())
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answers: list[str]) -> float:
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(a) for a in answers))


def anls(prediction: str, answers: list[str], threshold: float = 0.5) -> float:
    """DocVQA's ANLS for one question: max over answers of 1 - NL if NL < threshold else 0,
    NL = Levenshtein distance / longer length, on lower-cased, space-collapsed strings."""
    pred = " ".join(prediction.lower().split())
    best = 0.0
    for answer in answers:
        ref = " ".join(answer.lower().split())
        longest = max(len(pred), len(ref))
        distance = levenshtein(pred, ref) / longest if longest else 0.0
        best = max(best, 1.0 - distance if distance < threshold else 0.0)
    return best


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]
