#!/usr/bin/env python3
"""CI benchmark: quantize the committed small VLM and report the README's two tables.

The model (benchmarks/models/small-vlm, made by train_small_vlm.py) has learned a
synthetic picture-question task, so its accuracy means something. This script

1. quantizes it with GPTQ-Int8, GPTQ-Int4, AWQ-Int4 and RTN-Int4 (round to nearest, the
   reference a calibrated method must beat), calibrated on the model's calib.jsonl
   (training-distribution pictures, none of them held out);
2. measures quality against BF16 on the held-out VQA file: accuracy (exact match and ANLS,
   as the README reports MMMU/DocVQA per quantization), KL to BF16, top-1 agreement and
   answer perplexity -- accuracy alone only catches catastrophes on such a small model;
3. measures speed on the CPU: prompts of 1 and 256 tokens, exactly 32 new tokens, and a
   one-picture prefill, each configuration in a fresh process (RTN-Int4 runs the same
   kernels as GPTQ-Int4, so it is left out of the speed table);
4. prints the tables and writes benchmarks/results/ci_speed.md|json, ci_quality.md|json.

It fails (exit 1) on a catastrophe: a failed run, BF16 accuracy under 70 %, or a GPTQ/AWQ
model losing more than 10 accuracy points or drifting more than 0.5 nats of KL.

    python benchmarks/ci_benchmark.py            # a few minutes on 2 cores
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = HERE / "models" / "small-vlm"
RESULTS = HERE / "results"

MIN_BF16_ACCURACY = 0.70
MAX_ACCURACY_DROP = 0.10
MAX_KL = 0.5


def quantize_all(model: Path, work: Path, calib: Path, samples: int) -> tuple[list[tuple[str, str]], list[str]]:
    """(label, directory) of every method, and a note of how long each took."""
    from qwen2vl_quant import CalibrationConfig, GPTQConfig, RTNConfig, quantize_checkpoint
    from qwen2vl_quant.config import AWQConfig

    methods = [("GPTQ-Int8", GPTQConfig(bits=8)), ("GPTQ-Int4", GPTQConfig(bits=4)), ("AWQ", AWQConfig(bits=4)),
               ("RTN-Int4", RTNConfig(bits=4))]
    done, notes = [], []
    for label, config in methods:
        out = work / label.lower()
        started = time.perf_counter()
        quantize_checkpoint(model, out, config, calib_data=calib, calibration=CalibrationConfig(num_samples=samples),
                            device="cpu", overwrite=True, show_progress=False)
        seconds = time.perf_counter() - started
        print(f"quantized {label} in {seconds:.1f} s")
        notes.append(f"{label}: quantized in {seconds:.1f} s on this machine ({samples} calibration conversations)")
        done.append((label, str(out)))
    return done, notes


def gate(quality) -> list[str]:
    """Catastrophes that fail CI (see the module docstring)."""
    problems = []
    rows = {r.quantization: r for r in quality.quality}
    bf16 = rows.get("BF16")
    if bf16 is None or bf16.error:
        return [f"BF16 quality run failed: {bf16.error if bf16 else 'missing'}"]
    if bf16.exact_match is None or bf16.exact_match < MIN_BF16_ACCURACY:
        problems.append(f"BF16 accuracy {bf16.exact_match} is under {MIN_BF16_ACCURACY}: is the model the trained one?")
    for label in ("GPTQ-Int8", "GPTQ-Int4", "AWQ"):
        row = rows.get(label)
        if row is None or row.error:
            problems.append(f"{label} quality run failed: {row.error if row else 'missing'}")
            continue
        if row.exact_match < bf16.exact_match - MAX_ACCURACY_DROP:
            problems.append(f"{label} accuracy {row.exact_match:.3f} vs BF16 {bf16.exact_match:.3f}")
        if row.kl > MAX_KL:
            problems.append(f"{label} KL to BF16 {row.kl:.3f} > {MAX_KL}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=MODEL, help="trained BF16 model with heldout_vqa.jsonl, calib.jsonl")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, default=None, help="where the quantized models go (default: a temp dir)")
    parser.add_argument("--calib-samples", type=int, default=32)
    parser.add_argument("--max-samples", type=int, default=None, help="held-out questions to use (default: all)")
    parser.add_argument("--input-lengths", default="1,256")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 because the CI CPU is shared (2 threads on a busy 2-core machine "
                        "can be 10x slower)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    import torch  # noqa: F401  (quiet its loggers after it configured them)

    for noisy in ("transformers", "torch", "accelerate", "gptqmodel"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    from qwen2vl_quant.benchmark import QualityConfig, SpeedConfig, run_benchmark

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="qwen2vl-ci-bench-") as tmp:
        work = args.work or Path(tmp)
        quantized, notes = quantize_all(args.model, work, args.model / "calib.jsonl", args.calib_samples)
        common = dict(device="cpu", threads=args.threads, name="small-vlm", show_progress=not args.no_progress)
        quality = run_benchmark(args.model, quantized, quality=QualityConfig(
            vqa=str(args.model / "heldout_vqa.jsonl"), max_samples=args.max_samples, max_new_tokens=8), **common)
        lengths = tuple(int(x) for x in args.input_lengths.split(","))
        speed = run_benchmark(args.model, [q for q in quantized if q[0] != "RTN-Int4"], speed=SpeedConfig(
            input_lengths=lengths, new_tokens=args.new_tokens, image_size=args.image_size), **common)
    quality.notes += notes + ["RTN-Int4 = round to nearest, group 128: the uncalibrated reference."]
    total = time.perf_counter() - started
    for report in (speed, quality):
        report.notes.append(f"benchmarks/ci_benchmark.py took {total:.0f} s in all.")
    print()
    print(speed.speed_markdown())
    print(quality.quality_markdown())
    for path in speed.write(args.out, "ci_") + quality.write(args.out, "ci_"):
        print(f"wrote {path}")
    problems = gate(quality) + speed.failures()
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    print(f"ci_benchmark: {total:.0f} s, {'FAILED' if problems else 'ok'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
