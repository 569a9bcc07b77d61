"""The benchmark's tables, in markdown and JSON, shaped like the Qwen2-VL README's.

Speed: "Model | Input Length | Quantization | GPU Num | Speed (tokens/s) | GPU Memory (GB)",
one block per input length with every model, as the README's "Speed Benchmark"; then our
columns (time to first token, weight bytes, kernel path), and a second table for the
multimodal prefill. Quality: one row per model, BF16 first, as the README's
"Performance of Quantized Models". A failed run keeps its row, with the error's one line.
Memory is in GiB, as the README's "GB" (its 7B BF16 at input 1 reads 16.07: 16.6e9 bytes of
weights is 15.4 GiB).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import machine as machine_mod
from .models import ModelEntry
from .quality import QualityResult
from .speed import SpeedResult

GIB = 1024**3
MIB = 1024**2
DASH = "—"


@dataclass
class BenchReport:
    """Everything one ``run_benchmark`` measured, with where and how."""

    name: str
    machine: dict[str, Any]
    runtime: dict[str, Any]
    models: list[ModelEntry]
    speed_config: dict[str, Any] | None = None
    quality_config: dict[str, Any] | None = None
    speed: list[SpeedResult] = field(default_factory=list)
    quality: list[QualityResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    # ------------------------------------------------------------------ queries
    def failures(self) -> list[str]:
        """"label what: error" for every failed run."""
        out = [f"{r.quantization} speed {_what(r)}: {r.error}" for r in self.speed if r.error]
        return out + [f"{r.quantization} quality: {r.error}" for r in self.quality if r.error]

    @property
    def on_gpu(self) -> bool:
        return str(self.runtime.get("device", "")).startswith("cuda")

    # ------------------------------------------------------------------ JSON
    def speed_json(self) -> dict[str, Any]:
        return {**self._head("speed"), "config": self.speed_config, "method": self.speed_method(),
                "rows": [r.to_dict() for r in self.speed if r.kind == "text"],
                "image_rows": [r.to_dict() for r in self.speed if r.kind == "image"]}

    def quality_json(self) -> dict[str, Any]:
        return {**self._head("quality"), "config": self.quality_config, "method": self.quality_method(),
                "rows": [r.to_dict() for r in self.quality]}

    def _head(self, kind: str) -> dict[str, Any]:
        return {"kind": kind, "name": self.name, "machine": self.machine, "runtime": self.runtime,
                "models": [dataclasses.asdict(m) for m in self.models], "notes": self.notes,
                "seconds": round(self.seconds, 1)}

    # ------------------------------------------------------------------ markdown
    def speed_method(self) -> list[str]:
        c = self.speed_config or {}
        lines = [f"batch 1; prompts of {', '.join(map(str, c.get('input_lengths') or []))} tokens; exactly "
                 f"{c.get('new_tokens')} new tokens per run (min_new_tokens = max_new_tokens, greedy); "
                 f"Speed = new tokens / generation time, timed between device synchronizations after one "
                 f"untimed warm-up; median of {c.get('repeats', 1)} run(s); Prefill = time to the first token."]
        if self.on_gpu:
            lines.append("GPU Memory = peak torch.cuda.max_memory_allocated of the run (weights + activations + "
                         "KV cache), summed over the GPUs used, in GiB.")
        elif c.get("isolate", True):
            lines.append("No GPU: Peak RSS = peak resident memory (ru_maxrss) of the fresh process that ran the "
                         "configuration (Python, torch and transformers included; see baseline_rss_bytes in the "
                         "JSON), in GiB; Weights = bytes of the checkpoint's safetensors files.")
        else:
            lines.append("No GPU, runs not isolated: Peak RSS is the benchmark process's peak so far, not per run.")
        lines.append("Kernel path = what the quantized Linear layers ran (kernels/dispatch.py, recorded during the "
                     "warm-up): decode = one token per step, prefill = the prompt.")
        return lines

    def speed_markdown(self) -> str:
        gpu = self.on_gpu
        mem_head = "GPU Memory (GB)" if gpu else "Peak RSS (GB)"
        head = ["Model", "Input Length", "Quantization", "GPU Num", "Speed (tokens/s)", mem_head, "Prefill (s)",
                "Weights (MB)", "Kernel path"]
        rows, last_length = [], None
        text = [r for r in self.speed if r.kind == "text"]
        for i, r in enumerate(text):
            length = str(r.input_length) if r.input_length != last_length else ""
            last_length = r.input_length
            speed = r.error if r.error else _num(r.tokens_per_s, 2)
            rows.append([self.name if i == 0 else "", length, r.quantization, str(r.gpu_num) if not r.error else DASH,
                         speed, _gib(r.memory_bytes) if not r.error else DASH, _num(r.prefill_s, 3),
                         _mib(r.weight_bytes), r.kernel_path or DASH])
        out = [f"## Speed: {self.name} on {self._device_words()}", ""]
        out += machine_mod.describe(self.machine) + [""]
        out += [f"Method: {line}" for line in self.speed_method()] + [""]
        out += _table(head, rows)
        image = [r for r in self.speed if r.kind == "image"]
        if image:
            out += ["", "Multimodal prefill: one picture and a short question in the chat template, time to the "
                    "first token (vision tower + merger + language-model prefill).", ""]
            head = ["Model", "Quantization", "Image (px)", "Image tokens", "Prompt tokens", "Prefill (s)",
                    "Prompt tokens/s", mem_head, "Kernel path"]
            rows = []
            for i, r in enumerate(image):
                if r.error:
                    rows.append([self.name if i == 0 else "", r.quantization, DASH, DASH, DASH, r.error, DASH, DASH,
                                 r.kernel_path or DASH])
                    continue
                size = f"{r.image_size[0]}x{r.image_size[1]}" if r.image_size else DASH
                per_s = r.input_length / r.prefill_s if r.prefill_s else None
                rows.append([self.name if i == 0 else "", r.quantization, size, str(r.image_tokens),
                             str(r.input_length), _num(r.prefill_s, 3), _num(per_s, 1), _gib(r.memory_bytes),
                             r.kernel_path or DASH])
            out += _table(head, rows)
        out += self._notes()
        return "\n".join(out) + "\n"

    def quality_method(self) -> list[str]:
        c = self.quality_config or {}
        sources = " and ".join(x for x in (c.get("eval_data"), c.get("vqa")) if x)
        return [f"held-out samples from {sources} (never the calibration samples); teacher-forced on every "
                "answer token (and its closing <|im_end|>):",
                "KL = mean KL(BF16 || model) of the next-token distributions, nats per answer token; Top-1 = how "
                "often the model's most likely token is BF16's; PPL = exp(mean NLL of the reference answers).",
                "EM = exact match of the greedy answer after VQA normalization, ANLS = DocVQA's average "
                f"normalized Levenshtein similarity (threshold {c.get('anls_threshold', 0.5)}); best over the "
                "reference answers; in %."]

    def quality_markdown(self) -> str:
        vqa = Path(self.quality_config["vqa"]).stem if self.quality_config and self.quality_config.get("vqa") else None
        head = ["Model Size", "Quantization"]
        if vqa:
            head += [f"{vqa} EM", f"{vqa} ANLS"]
        head += ["KL to BF16", "Top-1 agreement", "Answer PPL", "Weights (MB)", "Kernel path"]
        rows = []
        for i, r in enumerate(self.quality):
            cells = [self.name if i == 0 else "", r.quantization]
            if r.error:
                cells += [r.error] + [DASH] * (len(head) - 4) + [r.kernel_path or DASH]
                rows.append(cells)
                continue
            if vqa:
                cells += [_pct(r.exact_match), _pct(r.anls)]
            cells += ["0 (reference)" if r.reference else _kl(r.kl), _pct(r.top1_agreement), _num(r.answer_ppl, 4), _mib(r.weight_bytes),
                      r.kernel_path or DASH]
            rows.append(cells)
        out = [f"## Quality: {self.name} on {self._device_words()}", ""]
        out += machine_mod.describe(self.machine) + [""]
        out += [f"Method: {line}" for line in self.quality_method()]
        first = next((r for r in self.quality if not r.error), None)
        if first:
            counts = f"{first.samples} held-out samples, {first.answer_tokens} answer tokens"
            counts += f", {first.vqa_questions} VQA questions" if first.vqa_questions else ""
            out += [f"Data: {counts}."]
        out += [""] + _table(head, rows) + self._notes()
        return "\n".join(out) + "\n"

    def _notes(self) -> list[str]:
        return ["", *[f"Note: {n}" for n in self.notes]] if self.notes else []

    def _device_words(self) -> str:
        if self.on_gpu:
            gpus = self.machine.get("gpus") or []
            return gpus[0]["name"] if gpus else "GPU"
        return f"CPU ({self.machine.get('cpu')}, {self.machine.get('cpu_cores')} cores)"

    # ------------------------------------------------------------------ files
    def write(self, out_dir: str | Path, prefix: str = "") -> list[Path]:
        """``{prefix}speed.md/.json`` and ``{prefix}quality.md/.json`` for the parts measured."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        parts = [("speed", self.speed_markdown, self.speed_json)] if self.speed_config else []
        parts += [("quality", self.quality_markdown, self.quality_json)] if self.quality_config else []
        for stem, markdown, data in parts:
            md, js = out_dir / f"{prefix}{stem}.md", out_dir / f"{prefix}{stem}.json"
            md.write_text(markdown())
            js.write_text(json.dumps(data(), indent=1, default=str) + "\n")
            written += [md, js]
        return written


def _what(r: SpeedResult) -> str:
    return f"{r.input_length} tokens" if r.kind == "text" else "image prefill"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return lines + ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]


def _num(x: float | None, digits: int) -> str:
    return DASH if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return DASH if x is None else f"{100 * x:.2f}"


def _kl(x: float | None) -> str:
    return DASH if x is None else f"{x:.3g}"


def _gib(x: int | None) -> str:
    return DASH if x is None else f"{x / GIB:.2f}"


def _mib(x: int | None) -> str:
    return DASH if not x else f"{x / MIB:.1f}"
