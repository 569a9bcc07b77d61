"""``qwen2vl-quant``: the command line. It only builds configs and calls the API."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__
from .config import SUPPORTED_BITS, SUPPORTED_GROUP_SIZES, CalibrationConfig, GPTQConfig
from .benchmark.cli import add_bench_parser
from .errors import OutputError, QuantError

EXAMPLES = """examples:
  qwen2vl-quant gptq --bits 4 ./Qwen2-VL-7B-Instruct ./Qwen2-VL-7B-Instruct-GPTQ-Int4
  qwen2vl-quant gptq --bits 8 --calib my_sft_samples.jsonl --num-samples 256 MODEL OUT
  qwen2vl-quant demo-model ./tiny-qwen2vl      # a small random Qwen2-VL to try things on
"""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    # torch configures its own loggers when imported, so import it before quieting them;
    # transformers and friends are chatty at INFO, our own modules keep INFO.
    import torch  # noqa: F401

    for noisy in ("transformers", "torch", "accelerate", "gptqmodel"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return args.run(args)
    except QuantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun with --resume to continue from the last finished layer", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qwen2vl-quant",
        description="Quantize the language model of a Qwen2-VL checkpoint (GPTQ Int4/Int8); the vision "
        "tower, merger, embeddings and lm_head stay in BF16. Output loads in transformers and vLLM.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    gptq = commands.add_parser("gptq", help="GPTQ-quantize a Qwen2-VL model directory",
                               description="GPTQ (Frantar et al. 2022), one decoder layer at a time, streamed "
                               "from the checkpoint shards; output is a GPTQ v1 checkpoint.",
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    gptq.add_argument("model_dir", metavar="MODEL_DIR", type=Path, help="Qwen2-VL model directory (HF layout, safetensors)")
    gptq.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="where to write the quantized checkpoint")
    gptq.add_argument("--bits", type=int, choices=SUPPORTED_BITS, required=True, help="weight bits")
    gptq.add_argument("--group-size", type=int, choices=SUPPORTED_GROUP_SIZES, default=128,
                      help="input channels sharing a scale/zero; -1 = one group per output channel")
    sym = gptq.add_mutually_exclusive_group()
    sym.add_argument("--sym", dest="sym", action="store_true", default=True, help="symmetric grid (zero fixed)")
    sym.add_argument("--asym", dest="sym", action="store_false", help="asymmetric grid (a zero point per group)")
    gptq.add_argument("--desc-act", action="store_true", help="act-order: quantize channels by decreasing activation energy")
    gptq.add_argument("--static-groups", action="store_true", help="with --desc-act, keep groups in channel order (faster kernels)")
    gptq.add_argument("--damp", type=float, default=0.01, help="Hessian dampening, fraction of its mean diagonal")
    gptq.add_argument("--block-size", type=int, default=128, help="columns per lazy-batch GPTQ block")
    gptq.add_argument("--no-true-sequential", dest="true_sequential", action="store_false",
                      help="collect all Hessians of a layer at once instead of q/k/v -> o -> gate/up -> down")
    _add_common(gptq)
    gptq.set_defaults(run=_run_gptq)

    awq = commands.add_parser("awq", help="AWQ-quantize a Qwen2-VL model directory",
                              description="AWQ (Lin et al. 2023): activation-aware scales folded into the norms, "
                              "clipping search, then group-wise quantization; one decoder layer at a time. Output "
                              "is an AutoAWQ GEMM checkpoint (4-bit: transformers and vLLM; 8-bit: transformers "
                              "only, no AWQ 8-bit kernel exists in vLLM).",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    awq.add_argument("model_dir", metavar="MODEL_DIR", type=Path, help="Qwen2-VL model directory (HF layout, safetensors)")
    awq.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="where to write the quantized checkpoint")
    awq.add_argument("--bits", type=int, choices=(4, 8), required=True, help="weight bits")
    awq.add_argument("--group-size", type=int, choices=(32, 64, 128), default=128,
                     help="input channels sharing a scale/zero")
    awq.add_argument("--zero-point", action=argparse.BooleanOptionalAction, default=True,
                     help="asymmetric grid with a zero per group (--no-zero-point: symmetric)")
    awq.add_argument("--n-grid", type=int, default=20, help="exponents tried in the scale search")
    awq.add_argument("--no-duo-scaling", dest="duo_scaling", action="store_false",
                     help="search only x_mean^r scales, not AutoAWQ's x_mean^r / w_mean^(1-r) too")
    awq.add_argument("--no-clip", dest="clip", action="store_false", help="skip the clipping search")
    _add_common(awq)
    awq.set_defaults(run=_run_awq)

    demo = commands.add_parser("demo-model", help="write a small random-weight Qwen2-VL model (offline) to try the tool on")
    demo.add_argument("out_dir", metavar="OUT_DIR", type=Path)
    demo.add_argument("--preset", choices=("tiny", "small"), default="small")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("-q", "--quiet", action="store_true", help=argparse.SUPPRESS)
    demo.set_defaults(run=_run_demo_model)

    add_bench_parser(commands)
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    calib = parser.add_argument_group("calibration")
    calib.add_argument("--calib", help="calibration data: .jsonl/.json conversations (Qwen2-VL message or ShareGPT "
                       "format), a folder of images (captions optional), a datasets save_to_disk folder, or "
                       "hf:NAME?split=...&image=...&question=...&answer=...; default: the built-in offline set")
    calib.add_argument("--num-samples", type=int, default=128, help="calibration samples to use (chosen with --seed)")
    calib.add_argument("--seed", type=int, default=0, help="seed of the sample selection")
    calib.add_argument("--min-pixels", type=int, default=None, help="lower bound of pixels per image (default: processor's)")
    calib.add_argument("--max-pixels", type=int, default=512 * 28 * 28,
                       help="upper bound of pixels per image; one visual token per 28x28 pixels")
    calib.add_argument("--max-length", type=int, default=4096,
                       help="longest sample in tokens; longer ones are cut at a message boundary after the last "
                       "image/video, or skipped and counted; never cut through an image")
    calib.add_argument("--max-visual-tokens", type=int, default=2048,
                       help="visual tokens per sample; its images/videos are downscaled to fit, else it is skipped")
    calib.add_argument("--max-frames", type=int, default=16, help="frames sampled per video")
    calib.add_argument("--fps", type=float, default=2.0, help="frame sampling rate of video files")
    calib.add_argument("--shuffle", action="store_true", help="shuffle the samples (deterministic in --seed)")
    calib.add_argument("--skip-bad-samples", action="store_true",
                       help="skip (and count) samples with missing/corrupt media instead of stopping")
    out = parser.add_argument_group("output and run")
    out.add_argument("--max-shard-size", default="4GB", help="largest safetensors shard, e.g. 4GB, 500MB")
    out.add_argument("--device", default=None, help="compute device, e.g. cpu, cuda, cuda:1 (default: cuda if present)")
    out.add_argument("--activations-device", default=None,
                     help="where calibration activations live between layers (e.g. cpu when they do not fit on the GPU)")
    out.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
    out.add_argument("--resume", action="store_true", help="continue a killed run from its last finished layer")
    out.add_argument("--tensor-parallel", type=int, default=None, metavar="N",
                     help="pad the MLP intermediate size so vLLM can split the model over N GPUs (and divisors of N); "
                     "outputs are unchanged (Qwen padded 72B's 29568 to 29696 this way)")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress output, only the summary")


def _calibration(args: argparse.Namespace) -> CalibrationConfig:
    return CalibrationConfig(num_samples=args.num_samples, seed=args.seed, min_pixels=args.min_pixels,
                             max_pixels=args.max_pixels, max_length=args.max_length, shuffle=args.shuffle,
                             max_frames=args.max_frames, fps=args.fps, max_visual_tokens=args.max_visual_tokens,
                             skip_bad_samples=args.skip_bad_samples)


def _run_gptq(args: argparse.Namespace) -> int:
    from .api import quantize_checkpoint

    config = GPTQConfig(bits=args.bits, group_size=args.group_size, sym=args.sym, desc_act=args.desc_act,
                        static_groups=args.static_groups, damp_percent=args.damp, block_size=args.block_size,
                        true_sequential=args.true_sequential)
    calibration = _calibration(args)
    print(f"GPTQ {args.bits}-bit, group size {args.group_size}: {args.model_dir} -> {args.out_dir}")
    report = quantize_checkpoint(args.model_dir, args.out_dir, config, calib_data=args.calib, calibration=calibration,
                                 device=args.device, activations_device=args.activations_device,
                                 max_shard_size=args.max_shard_size, overwrite=args.overwrite, resume=args.resume,
                                 tensor_parallel=args.tensor_parallel, show_progress=not args.quiet)
    _print_summary(report, args.model_dir, args.out_dir)
    return 0


def _run_awq(args: argparse.Namespace) -> int:
    from .api import quantize_checkpoint
    from .awq_config import AWQConfig

    config = AWQConfig(bits=args.bits, group_size=args.group_size, zero_point=args.zero_point, n_grid=args.n_grid,
                       duo_scaling=args.duo_scaling, clip=args.clip)
    print(f"AWQ {args.bits}-bit, group size {args.group_size}: {args.model_dir} -> {args.out_dir}")
    report = quantize_checkpoint(args.model_dir, args.out_dir, config, calib_data=args.calib,
                                 calibration=_calibration(args), device=args.device,
                                 activations_device=args.activations_device, max_shard_size=args.max_shard_size,
                                 overwrite=args.overwrite, resume=args.resume, tensor_parallel=args.tensor_parallel,
                                 show_progress=not args.quiet)
    _print_summary(report, args.model_dir, args.out_dir)
    return 0


def _print_summary(report, model_dir: Path, out_dir: Path) -> None:
    print()
    print(f"calibration: {report.calibration}")
    print(report.table())
    for note in report.notes:
        print(f"note: {note}")
    print()
    worst = ", ".join(f"layer {r.layer} {r.name} {r.rel_error:.4f}" for r in report.worst(3))
    print(f"mean relative output error {report.mean_rel_error():.5f}; worst: {worst}")
    size_in = _weights_size(model_dir)
    size_out = _weights_size(out_dir)
    print(f"weights: {size_in / 1e9:.3f} GB -> {size_out / 1e9:.3f} GB; took {report.seconds:.1f} s")
    print(f"wrote {out_dir}")


def _weights_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.safetensors"))


def _run_demo_model(args: argparse.Namespace) -> int:
    from .tiny_model import build_tiny_qwen2vl

    if args.out_dir.exists() and any(args.out_dir.iterdir()):
        raise OutputError(f"output directory {args.out_dir} is not empty")
    path = build_tiny_qwen2vl(args.out_dir, preset=args.preset, seed=args.seed)
    print(f"wrote a random-weight Qwen2-VL ({args.preset}) to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
