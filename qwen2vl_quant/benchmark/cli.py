"""``qwen2vl-quant bench``: argument parsing only; the work is ``run_benchmark``.

Hooked into the main command line with ``add_bench_parser(subparsers)``; the handler
returns an exit code and raises QuantError subclasses for user mistakes (the main CLI
prints those as one line and exits 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXAMPLES = """examples:
  # CPU, small models: prompts of 1 and 256 tokens, 32 new tokens, plus a held-out VQA file
  qwen2vl-quant bench --vqa heldout_vqa.jsonl ./small-vlm ./small-vlm-gptq-int8 ./small-vlm-gptq-int4

  # GPU, the Qwen2-VL README's speed table (1, 6144, 14336, 30720 tokens in, 2048 out)
  qwen2vl-quant bench --device cuda --name Qwen2-VL-7B-Instruct --no-quality \\
      ./Qwen2-VL-7B-Instruct GPTQ-Int8=./7b-int8 GPTQ-Int4=./7b-int4 AWQ=./7b-awq

Each speed run is a fresh process; a run that fails (OOM at one input length) shows the
error in its row and the others go on. Writes OUT/speed.md|json and OUT/quality.md|json.
"""


def add_bench_parser(subparsers: argparse._SubParsersAction,
                     formatter_class: type[argparse.HelpFormatter] = argparse.RawDescriptionHelpFormatter,
                     ) -> argparse.ArgumentParser:
    """Add the ``bench`` command to a subparsers object (the main CLI's, with its help formatter)."""
    bench = subparsers.add_parser(
        "bench", help="speed/memory and quality tables of a BF16 model and its quantized outputs",
        description="The Qwen2-VL README's tables for any model: tokens/s and memory at given input lengths "
        "(batch 1, exactly N new tokens), the prefill of a picture, and quality against BF16 on held-out "
        "samples (KL, top-1 agreement, answer perplexity, VQA exact match and ANLS).",
        epilog=EXAMPLES, formatter_class=formatter_class)
    bench.add_argument("model_dir", metavar="MODEL_DIR", type=Path, help="the BF16 Qwen2-VL model directory")
    bench.add_argument("quantized", metavar="QUANT_DIR", nargs="*",
                       help="quantized outputs of qwen2vl-quant, as DIR or LABEL=DIR (label default: GPTQ-Int4, "
                       "GPTQ-Int8, AWQ, RTN-Int4... from the checkpoint)")
    bench.add_argument("--out", type=Path, default=Path("bench-results"),
                       help="folder for speed.md/json and quality.md/json")
    bench.add_argument("--prefix", default="", help="file name prefix, e.g. 'ci_' gives ci_speed.md")
    bench.add_argument("--name", help="model name in the tables (default: MODEL_DIR's folder name)")

    speed = bench.add_argument_group("speed table")
    speed.add_argument("--no-speed", action="store_true", help="skip the speed table")
    speed.add_argument("--input-lengths", type=_lengths, default=None,
                       help="prompt lengths in tokens, comma separated (default: 1,6144,14336,30720 on GPU; "
                       "1,256 on CPU)")
    speed.add_argument("--new-tokens", type=int, default=None,
                       help="tokens generated per run, exactly (default: 2048 on GPU, 32 on CPU)")
    speed.add_argument("--image-size", type=int, default=None,
                       help="side in px of the picture of the multimodal-prefill run (default 896 on GPU, 448 on "
                       "CPU; the processor's pixel bounds apply); 0 skips it")
    speed.add_argument("--repeats", type=int, default=1, help="timed runs per configuration (median reported)")
    speed.add_argument("--timeout", type=float, default=None, help="seconds allowed per speed run")
    speed.add_argument("--no-isolate", dest="isolate", action="store_false",
                       help="run in this process instead of one fresh process per run (faster; memory is then "
                       "the process's peak, not the run's)")

    quality = bench.add_argument_group("quality table (needs --eval-data and/or --vqa)")
    quality.add_argument("--no-quality", action="store_true", help="skip the quality table")
    quality.add_argument("--eval-data", type=Path,
                         help="held-out conversations with answers (.jsonl/.json, the calibration file format); "
                         "never the calibration samples")
    quality.add_argument("--vqa", type=Path,
                         help='VQA JSON lines: {"image": "rel/path.png", "question": "...", "answers": ["..."]}')
    quality.add_argument("--max-samples", type=int, default=200, help="first N conversations / questions")
    quality.add_argument("--max-pixels", type=int, default=None, help="pixel bound per image (default: processor's)")
    quality.add_argument("--answer-tokens", type=int, default=16, help="generation budget of a VQA answer")

    run = bench.add_argument_group("run")
    run.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if present)")
    run.add_argument("--loader", choices=("ours", "transformers"), default="ours",
                     help="ours: qwen2vl_quant.load_quantized (our kernels); transformers: from_pretrained "
                     "(optimum + gptqmodel)")
    run.add_argument("--attn-implementation", default="sdpa",
                     help="attention of the language model: sdpa, eager, flash_attention_2")
    run.add_argument("--multi-gpu", action="store_true",
                     help="spread models loaded by transformers (BF16; all with --loader transformers) over every "
                     "visible GPU (device_map=auto), e.g. 72B BF16; choose the GPUs with CUDA_VISIBLE_DEVICES")
    run.add_argument("--threads", type=int, default=None,
                     help="torch CPU threads (default: torch's; 1 is often fastest on a CPU shared with other jobs)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar, only the tables")
    bench.set_defaults(run=run_bench)
    return bench


def run_bench(args: argparse.Namespace) -> int:
    from .quality import QualityConfig
    from .run import run_benchmark
    from .speed import SpeedConfig

    speed = None if args.no_speed else SpeedConfig(
        input_lengths=args.input_lengths, new_tokens=args.new_tokens, image_size=args.image_size,
        repeats=args.repeats, isolate=args.isolate, timeout_s=args.timeout)
    quality = None
    if not args.no_quality and (args.eval_data or args.vqa):
        quality = QualityConfig(eval_data=_str(args.eval_data), vqa=_str(args.vqa), max_samples=args.max_samples,
                                max_pixels=args.max_pixels, max_new_tokens=args.answer_tokens)
    elif not args.no_quality:
        print("no --eval-data or --vqa given: quality table skipped")
    report = run_benchmark(args.model_dir, args.quantized, speed=speed, quality=quality, device=args.device,
                           loader=args.loader, attn_implementation=args.attn_implementation or None,
                           threads=args.threads, multi_gpu=args.multi_gpu, name=args.name, show_progress=not args.quiet)
    if report.speed_config:
        print(report.speed_markdown())
    if report.quality_config:
        print(report.quality_markdown())
    for path in report.write(args.out, args.prefix):
        print(f"wrote {path}")
    failures = report.failures()
    if failures:
        print(f"{len(failures)} run(s) failed: " + "; ".join(failures), file=sys.stderr)
    return 1 if failures else 0


def _lengths(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated token counts, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"input lengths must be positive, got {text!r}")
    return values


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
