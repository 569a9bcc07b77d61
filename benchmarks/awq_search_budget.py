#!/usr/bin/env python3
"""Does AWQ's bounded search cost quality? (issue 13)

AWQ scores each of its scale candidates on a bounded sample (``AWQConfig.search_tokens``
tokens, ``search_rows`` output rows where the spec allows) instead of every calibration
token and row. This script quantizes the same models with the exact search (``None``: every
token and row, what the code did before) and with bounded ones, and reports for each the
quantization time and the held-out error against BF16:

- the random-weight "small" test model (hidden 256, 4 layers, planted outlier channels)
  calibrated on N image conversations: the relative error of the final hidden states on 8
  held-out image conversations (none shared with the calibration set), in float32, as
  benchmarks/vs_gptqmodel.py measures it;
- the committed small trained VLM (benchmarks/models/small-vlm) calibrated on its
  calib.jsonl: KL to BF16 and accuracy on its held-out questions (as the CI benchmark).

The small model's Linears have 256-512 rows, so the default ``search_rows`` (512) leaves
them whole; the "scaled" setting bounds them at the fraction the default bounds 2B's
gate/up (512 of 8960 rows, 6 %), here 32 of 512, and the tokens at 512.

    python benchmarks/awq_search_budget.py                # about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SETTINGS = {  # name -> (search_tokens, search_rows)
    "exact (every token and row)": (None, None),
    "default (2048 tokens, 512 rows)": (2048, 512),
    "scaled (512 tokens, 32 rows)": (512, 32),
}


def held_out_error(model_dir: Path, calib: Path, held_out: Path, samples: int, search: tuple) -> tuple[float, float]:
    """(relative error of the final hidden states on the held-out set, quantization seconds)."""
    import torch
    from PIL import Image
    from transformers import AutoProcessor, Qwen2VLForConditionalGeneration
    from versus.data import image_paths, local_path, read_jsonl

    from qwen2vl_quant import CalibrationConfig, quantize
    from qwen2vl_quant.awq_config import AWQConfig

    processor = AutoProcessor.from_pretrained(model_dir)
    inputs = []
    for conversation in read_jsonl(held_out):
        text = processor.apply_chat_template(conversation, tokenize=False)
        images = [Image.open(local_path(p)).convert("RGB") for p in image_paths([conversation])]
        inputs.append(processor(text=[text], images=images, return_tensors="pt"))

    def final_hidden(model):
        with torch.inference_mode():
            return [model.model(**x).last_hidden_state.float() for x in inputs]

    reference = final_hidden(Qwen2VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval())
    model = Qwen2VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.bfloat16).eval()
    config = AWQConfig(bits=4, group_size=128, search_tokens=search[0], search_rows=search[1])
    started = time.perf_counter()
    quantize(model, str(calib), config, processor=processor, calibration=CalibrationConfig(num_samples=samples),
             device="cpu", show_progress=False)
    seconds = time.perf_counter() - started
    got = final_hidden(model.float())
    num = sum(float((g - w).pow(2).sum()) for g, w in zip(got, reference))
    den = sum(float(w.pow(2).sum()) for w in reference)
    return (num / den) ** 0.5, seconds


def small_vlm_quality(work: Path, search: tuple) -> dict:
    """KL to BF16 and held-out accuracy of the small trained VLM, as the CI benchmark measures."""
    from qwen2vl_quant import CalibrationConfig, quantize_checkpoint
    from qwen2vl_quant.awq_config import AWQConfig
    from qwen2vl_quant.benchmark import QualityConfig, run_benchmark

    model = HERE / "models" / "small-vlm"
    out = work / f"awq-{search[0]}-{search[1]}"
    started = time.perf_counter()
    quantize_checkpoint(model, out, AWQConfig(bits=4, search_tokens=search[0], search_rows=search[1]),
                        calib_data=model / "calib.jsonl", calibration=CalibrationConfig(num_samples=32),
                        device="cpu", overwrite=True, show_progress=False)
    seconds = time.perf_counter() - started
    report = run_benchmark(model, [f"AWQ={out}"], quality=QualityConfig(vqa=str(model / "heldout_vqa.jsonl"),
                                                                        max_new_tokens=8),
                           device="cpu", threads=1, show_progress=False)
    row = {r.quantization: r for r in report.quality}["AWQ"]
    return {"kl": row.kl, "accuracy": row.exact_match, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", default="16,128", help="calibration conversations for the small model")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "awq_search_budget")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    from versus.data import make_calibration, make_held_out
    from versus.measure import machine_info

    from qwen2vl_quant.tiny_model import build_tiny_qwen2vl

    counts = [int(n) for n in args.samples.split(",")]
    with tempfile.TemporaryDirectory(prefix="awq-budget-") as tmp:
        work = args.workdir or Path(tmp)
        model_dir = work / "small"
        if not (model_dir / "config.json").is_file():
            build_tiny_qwen2vl(model_dir, preset="small")
        calib = make_calibration(work, max(counts))
        held_out = make_held_out(work)
        rows = []
        for name, search in SETTINGS.items():
            row = {"setting": name, "search_tokens": search[0], "search_rows": search[1]}
            for n in counts:
                error, seconds = held_out_error(model_dir, calib, held_out, n, search)
                row[f"small_{n}"] = {"error": error, "seconds": seconds}
                print(f"{name}, small model, {n} samples: held-out error {error:.5f}, {seconds:.1f} s", flush=True)
            row["small_vlm"] = small_vlm_quality(work, search)
            print(f"{name}, small VLM: {row['small_vlm']}", flush=True)
            rows.append(row)
    machine = machine_info()
    result = {"command": " ".join(["python", "benchmarks/awq_search_budget.py", *(argv or sys.argv[1:])]),
              "machine": machine, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = ["# AWQ: bounded search against the exact one", "", f"`{result['command']}`", "",
             "| search | " + " | ".join(f"small model, {n} samples: error / s" for n in counts)
             + " | small VLM: KL / accuracy / s |", "|---|" + "---|" * (len(counts) + 1)]
    for row in rows:
        cells = [f"{row[f'small_{n}']['error']:.5f} / {row[f'small_{n}']['seconds']:.1f}" for n in counts]
        vlm = row["small_vlm"]
        cells.append(f"{vlm['kl']:.3g} / {vlm['accuracy']:.1%} / {vlm['seconds']:.1f}")
        lines.append(f"| {row['setting']} | " + " | ".join(cells) + " |")
    lines += ["", f"Machine: {machine['cpu']}, {machine['cpu_cores']} cores; {machine['date']}; "
              f"git {machine['git_commit']} ({machine['git_dirty_files']} files modified).", ""]
    Path(f"{args.out}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
