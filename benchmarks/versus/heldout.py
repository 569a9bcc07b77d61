"""Held-out quality of one quantization config, measured in-process, for the small studies
(awq_search_budget.py, act_order_error.py):

- ``small_model_error``: a random-weight test model quantized in memory; relative error of
  the final hidden states on held-out conversations (none shared with the calibration set),
  in float32, as vs_gptqmodel.py measures it;
- ``small_vlm_quality``: the committed small trained VLM quantized to a checkpoint; KL to
  BF16 and exact-match accuracy on its 200 held-out questions, as the CI benchmark measures.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent.parent
SMALL_MODEL_SAMPLES = (16, 128)  # calibration conversations of the random-weight small model
SMALL_VLM_SAMPLES = (20, 26, 32)  # calibration conversations of the small trained VLM


def small_model_error(model_dir: Path, calib: Path, held_out: Path, samples: int, config) -> tuple[float, float]:
    """(relative error of the final hidden states on the held-out set, quantization seconds)."""
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from qwen2vl_quant import CalibrationConfig, quantize

    from .data import image_paths, local_path, read_jsonl

    processor = AutoProcessor.from_pretrained(model_dir)
    inputs = []
    for conversation in read_jsonl(held_out):
        text = processor.apply_chat_template(conversation, tokenize=False)
        images = [Image.open(local_path(p)).convert("RGB") for p in image_paths([conversation])]
        inputs.append(processor(text=[text], images=images, return_tensors="pt"))

    def final_hidden(model):
        with torch.inference_mode():
            return [model.model(**x).last_hidden_state.float() for x in inputs]

    load = AutoModelForImageTextToText.from_pretrained
    reference = final_hidden(load(model_dir, dtype=torch.float32).eval())
    model = load(model_dir, dtype=torch.bfloat16).eval()
    started = time.perf_counter()
    quantize(model, str(calib), config, processor=processor, calibration=CalibrationConfig(num_samples=samples),
             device="cpu", show_progress=False)
    seconds = time.perf_counter() - started
    got = final_hidden(model.float())
    num = sum(float((g - w).pow(2).sum()) for g, w in zip(got, reference, strict=True))
    den = sum(float(w.pow(2).sum()) for w in reference)
    return (num / den) ** 0.5, seconds


def small_vlm_quality(work: Path, samples: int, config) -> dict:
    """KL to BF16, held-out accuracy and quantization seconds of the small trained VLM."""
    from qwen2vl_quant import CalibrationConfig, quantize_checkpoint
    from qwen2vl_quant.benchmark import QualityConfig, run_benchmark

    model = HERE / "models" / "small-vlm"
    out = work / "small-vlm-quantized"
    started = time.perf_counter()
    quantize_checkpoint(model, out, config, calib_data=model / "calib.jsonl",
                        calibration=CalibrationConfig(num_samples=samples), device="cpu", overwrite=True,
                        show_progress=False)
    seconds = time.perf_counter() - started
    report = run_benchmark(model, [f"Q={out}"], quality=QualityConfig(vqa=str(model / "heldout_vqa.jsonl"),
                                                                      max_new_tokens=8),
                           device="cpu", threads=2, show_progress=False)
    row = {r.quantization: r for r in report.quality}["Q"]
    return {"kl": row.kl, "accuracy": row.exact_match, "seconds": seconds}


def small_vlm_table(rows: list[dict], samples: tuple[int, ...], labels: list[str], heading: str) -> list[str]:
    """Markdown lines: per row (its ``labels`` cells), KL to BF16 / accuracy on the small VLM
    per calibration-set size, and their mean."""
    lines = ["Small trained VLM: KL to BF16 / held-out accuracy, per calibration set, and their mean.", "",
             f"| {heading} | " + " | ".join(f"{n} conversations" for n in samples) + " | mean |",
             "|" + "---|" * (heading.count("|") + 1 + len(samples) + 1)]
    for label, row in zip(labels, rows, strict=True):
        runs = [row["small_vlm"][n] for n in samples]
        cells = [f"{r['kl']:.3g} / {r['accuracy']:.1%}" for r in runs]
        cells.append(f"{statistics.mean(r['kl'] for r in runs):.3g} / "
                     f"{statistics.mean(r['accuracy'] for r in runs):.2%}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def machine_line(m: dict) -> str:
    return (f"Machine: {m['cpu']}, {m['cpu_cores']} cores; {m['date']}; git {m['git_commit']} "
            f"({m['git_dirty_files']} files modified).")


def run_study(script: str, argv: list[str], out: Path, workdir: Path | None,
              cases: list[tuple[str, dict, object]], render: Callable[[dict], str]) -> int:
    """Measure each case (label, fields of its row, quantization config) on the small model
    at SMALL_MODEL_SAMPLES and on the small VLM at SMALL_VLM_SAMPLES; write OUT.json and
    OUT.md (``render``) and print the table."""
    from qwen2vl_quant.api import write_demo_model

    from .data import make_calibration, make_held_out
    from .measure import machine_info

    machine = machine_info()
    rows = []
    with tempfile.TemporaryDirectory(prefix="small-study-") as tmp:
        work = workdir or Path(tmp)
        model_dir = work / "small"
        if not (model_dir / "config.json").is_file():
            write_demo_model(model_dir, preset="small")
        calib = make_calibration(work, max(SMALL_MODEL_SAMPLES))
        held_out = make_held_out(work)
        for label, fields, config in cases:
            row = {**fields, "small_model": {}, "small_vlm": {}}
            for n in SMALL_MODEL_SAMPLES:
                error, seconds = small_model_error(model_dir, calib, held_out, n, config)
                row["small_model"][n] = {"error": error, "seconds": seconds}
                print(f"{label}: small model, {n} samples: error {error:.5f}, {seconds:.1f} s", flush=True)
            for n in SMALL_VLM_SAMPLES:
                row["small_vlm"][n] = small_vlm_quality(work, n, config)
                print(f"{label}: small VLM, {n} samples: {row['small_vlm'][n]}", flush=True)
            rows.append(row)
    result = {"command": " ".join(["python", script, *argv]), "machine": machine, "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.json").write_text(json.dumps(result, indent=1) + "\n")
    Path(f"{out}.md").write_text(render(result))
    print(render(result))
    return 0
