"""``qwen2vl-quant``: the command line. It only builds configs and calls the API.

Checks that need no model (options, paths, the output directory) run before torch and
transformers are imported, so a mistake is answered at once, in one line, with exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Iterator

from . import __version__
from .arch import SPECS
from .benchmark.cli import add_bench_parser
from .config import (
    AWQ_GROUP_SIZES,
    DEFAULT_MAX_SHARD_SIZE,
    SUPPORTED_BITS,
    SUPPORTED_GROUP_SIZES,
    AWQConfig,
    CalibrationConfig,
    GPTQConfig,
)
from .errors import ConfigError, QuantError
from .pipeline.output_dir import check_output_dir, check_partial, interrupted_message

EXAMPLES = """examples:
  qwen2vl-quant gptq --bits 4 ./Qwen2.5-VL-7B-Instruct ./Qwen2.5-VL-7B-Instruct-GPTQ-Int4
  qwen2vl-quant awq --bits 4 --calib my_sft_samples.jsonl ./Qwen2-VL-7B-Instruct ./Qwen2-VL-7B-Instruct-AWQ
  qwen2vl-quant gptq --bits 8 --calib my_sft_samples.jsonl --num-samples 256 MODEL OUT
  qwen2vl-quant demo-model ./demo-qwen2vl      # a small random Qwen2-VL to try things on
  qwen2vl-quant demo-model --family qwen3_vl ./demo-qwen3vl
"""

GPTQ_DEFAULTS = GPTQConfig()
AWQ_DEFAULTS = AWQConfig()
CALIBRATION_DEFAULTS = CalibrationConfig()


class Parser(argparse.ArgumentParser):
    """A usage mistake is one line on stderr and exit 2, not the whole usage text."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends an option's default where it says something: not for required options, flags
    (their help says which side is the default), positionals, or options without one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("%(default)" in text or not action.option_strings or action.required or action.nargs == 0
                or action.default in (None, "", argparse.SUPPRESS)):
            return text
        return f"{text} (default: %(default)s)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        return args.run(args)
    except QuantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        out_dir = getattr(args, "out_dir", None)
        resumable = getattr(args, "resumable", False)
        print(interrupted_message(out_dir) if resumable else "interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="qwen2vl-quant",
        description="Quantize the language model of a Qwen2-VL, Qwen2.5-VL or Qwen3-VL checkpoint with GPTQ or AWQ "
        "(Int4/Int8); the vision tower, merger, embeddings and lm_head stay in BF16. Output loads in transformers "
        "and vLLM.",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND", parser_class=Parser)
    _add_gptq(commands)
    _add_awq(commands)
    _add_demo(commands)
    add_bench_parser(commands, HelpFormatter)
    return parser


def _add_gptq(commands: argparse._SubParsersAction) -> None:
    d = GPTQ_DEFAULTS
    gptq = commands.add_parser("gptq", help="GPTQ-quantize a Qwen2-VL / Qwen2.5-VL / Qwen3-VL model directory", formatter_class=HelpFormatter,
                               description="GPTQ (Frantar et al. 2022), one decoder layer at a time, streamed from "
                               "the checkpoint shards; output is a GPTQ v1 checkpoint (transformers and vLLM).")
    _add_model_and_output(gptq)
    gptq.add_argument("--bits", type=int, choices=SUPPORTED_BITS, required=True, help="weight bits")
    gptq.add_argument("--group-size", type=int, choices=SUPPORTED_GROUP_SIZES, default=d.group_size,
                      help="input channels sharing a scale/zero; -1 = one group per output channel")
    sym = gptq.add_mutually_exclusive_group()
    sym.add_argument("--sym", dest="sym", action="store_true", default=d.sym,
                     help="symmetric grid, zero point fixed at the middle code (the default; vLLM serves only this)")
    sym.add_argument("--asym", dest="sym", action="store_false", help="asymmetric grid with a zero point per group")
    gptq.add_argument("--desc-act", action=argparse.BooleanOptionalAction, default=d.desc_act,
                      help="act-order: quantize channels by decreasing activation energy, with static groups "
                      "(groups stay in channel order, so vLLM serves it); --no-desc-act solves in channel order "
                      f"(default: {'on' if d.desc_act else 'off'})")
    gptq.add_argument("--dynamic-groups", dest="static_groups", action="store_false", default=d.static_groups,
                      help="with act-order, AutoGPTQ's dynamic act-order: groups follow the permutation; loads in "
                      "transformers (gptqmodel) but vLLM refuses it")
    gptq.add_argument("--damp", type=float, default=d.damp_percent, help="Hessian dampening, fraction of its mean diagonal")
    gptq.add_argument("--block-size", type=int, default=d.block_size, help="columns per lazy-batch GPTQ block")
    gptq.add_argument("--no-true-sequential", dest="true_sequential", action="store_false", default=d.true_sequential,
                      help="collect all Hessians of a layer at once (default: true-sequential, q/k/v -> o -> "
                      "gate/up -> down, each group on the outputs of the quantized groups before it)")
    gptq.add_argument("--strict", action="store_true", default=d.strict,
                      help="stop when a Hessian stays indefinite after every damping retry (default: round that "
                      "group to nearest, with a warning and a mark in the report)")
    _add_calibration_and_run(gptq)
    gptq.set_defaults(run=_run_gptq)


def _add_awq(commands: argparse._SubParsersAction) -> None:
    d = AWQ_DEFAULTS
    awq = commands.add_parser("awq", help="AWQ-quantize a Qwen2-VL / Qwen2.5-VL / Qwen3-VL model directory", formatter_class=HelpFormatter,
                              description="AWQ (Lin et al. 2023): activation-aware scales folded into the norms, "
                              "clipping search, then group-wise quantization; one decoder layer at a time. Output "
                              "is an AutoAWQ GEMM checkpoint (4-bit: transformers and vLLM; 8-bit: transformers "
                              "only, no AWQ 8-bit kernel exists in vLLM).")
    _add_model_and_output(awq)
    awq.add_argument("--bits", type=int, choices=(4, 8), required=True, help="weight bits")
    awq.add_argument("--group-size", type=int, choices=AWQ_GROUP_SIZES, default=d.group_size,
                     help="input channels sharing a scale/zero")
    awq.add_argument("--zero-point", action=argparse.BooleanOptionalAction, default=d.zero_point,
                     help="asymmetric grid with a zero point per group (the default; --no-zero-point: symmetric "
                     "around the middle code)")
    awq.add_argument("--n-grid", type=int, default=d.n_grid, help="exponents tried in the scale search")
    awq.add_argument("--no-duo-scaling", dest="duo_scaling", action="store_false", default=d.duo_scaling,
                     help="search llm-awq's x_mean^r scales instead of AutoAWQ's x_mean^r / w_mean^(1-r)")
    awq.add_argument("--no-clip", dest="clip", action="store_false", default=d.clip,
                     help="skip the clipping search (default: search a clipping range per group)")
    awq.add_argument("--clip-cross-groups", type=float, default=d.clip_cross_groups, metavar="W",
                     help="weight in [0, 1] of the products of different groups' errors in the clipping "
                     "objective (0: AutoAWQ's per-group search; 1: each row's whole output error)")
    _add_calibration_and_run(awq)
    awq.set_defaults(run=_run_awq)


def _add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo-model", help="write a small random-weight Qwen VL model (offline) to try the tool on",
        formatter_class=HelpFormatter,
        description="Write a random-weight Qwen2-VL, Qwen2.5-VL or Qwen3-VL checkpoint with its tokenizer, "
        "processor and chat template, built offline. 'small' has every input size divisible by 128, so the "
        "default group size works; 'tiny' (Qwen2-VL only, for unit tests) needs --group-size 32 or 64.")
    demo.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="where to write the model")
    demo.add_argument("--family", choices=tuple(SPECS), default="qwen2_vl",
                      help="model family")
    demo.add_argument("--preset", choices=("tiny", "small"), default="small", help="model size")
    demo.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    demo.add_argument("--overwrite", action="store_true", help="replace an earlier output of this command at OUT_DIR")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    demo.set_defaults(run=_run_demo_model)


def _add_model_and_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR", type=Path, help="Qwen2-VL, Qwen2.5-VL or Qwen3-VL model directory (HF layout, safetensors)")
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="where to write the quantized checkpoint")
    parser.set_defaults(resumable=True)


def _add_calibration_and_run(parser: argparse.ArgumentParser) -> None:
    c = CALIBRATION_DEFAULTS
    calib = parser.add_argument_group("calibration")
    calib.add_argument("--calib", help="calibration data: .jsonl/.json conversations (Qwen-VL message or ShareGPT "
                       "format), a folder of images (captions optional), a datasets save_to_disk folder, or "
                       "hf:NAME?split=...&image=...&question=...&answer=... (default: the built-in offline set)")
    calib.add_argument("--num-samples", type=int, default=c.num_samples, help="calibration samples to use (chosen with --seed)")
    calib.add_argument("--seed", type=int, default=c.seed, help="seed of the sample selection")
    calib.add_argument("--min-pixels", type=int, default=c.min_pixels,
                       help="lower bound of pixels per image (default: the processor's)")
    calib.add_argument("--max-pixels", type=int, default=c.max_pixels,
                       help="upper bound of pixels per image; one visual token per 28x28 pixels")
    calib.add_argument("--max-length", type=int, default=c.max_length,
                       help="longest sample in tokens; longer ones are cut at a message boundary after the last "
                       "image/video, or skipped and counted; never cut through an image")
    calib.add_argument("--max-visual-tokens", type=int, default=c.max_visual_tokens,
                       help="visual tokens per sample; its images/videos are downscaled to fit, else it is skipped")
    calib.add_argument("--max-frames", type=int, default=c.max_frames, help="frames sampled per video")
    calib.add_argument("--fps", type=float, default=c.fps, help="frame sampling rate of video files")
    calib.add_argument("--shuffle", action="store_true", default=c.shuffle,
                       help="shuffle the samples (deterministic in --seed; default: file order)")
    calib.add_argument("--skip-bad-samples", action="store_true", default=c.skip_bad_samples,
                       help="skip (and count) samples with missing/corrupt media (default: stop at the first)")
    out = parser.add_argument_group("output and run")
    out.add_argument("--max-shard-size", default=DEFAULT_MAX_SHARD_SIZE, help="largest safetensors shard, e.g. 4GB, 500MB")
    out.add_argument("--device", default=None, help="compute device, e.g. cpu, cuda, cuda:1 (default: cuda if present)")
    out.add_argument("--activations-device", default=None,
                     help="where calibration activations live between layers (default: the compute device; cpu "
                     "when they do not fit on the GPU)")
    out.add_argument("--overwrite", action="store_true",
                     help="replace an earlier output of qwen2vl-quant at OUT_DIR (anything else there is refused)")
    out.add_argument("--resume", action="store_true", help="continue a stopped run from its last finished layer")
    out.add_argument("--tensor-parallel", type=int, default=None, metavar="N",
                     help="pad the MLP intermediate size so vLLM can split the model over N GPUs (and divisors of N); "
                     "outputs are unchanged (Qwen padded 72B's 29568 to 29696 this way)")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress output, only the summary")


def _calibration(args: argparse.Namespace) -> CalibrationConfig:
    # Every calibration option is a field of CalibrationConfig under the same name.
    return CalibrationConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(CalibrationConfig)
                                if hasattr(args, f.name)})


def _preflight(args: argparse.Namespace) -> None:
    """Every check that needs no model, before torch is imported."""
    from .calibration.hf import HF_PREFIX
    from .calibration.sources import open_sources
    from .model_dir import read_model_config

    read_model_config(args.model_dir)
    if args.calib and not args.calib.startswith(HF_PREFIX):
        open_sources(args.calib)  # a missing file or an unreadable folder, named
    check_output_dir(args.out_dir, args.overwrite, inputs=[args.model_dir])
    check_partial(args.out_dir, args.resume)
    if args.tensor_parallel is not None and args.tensor_parallel < 1:
        raise QuantError(f"--tensor-parallel must be at least 1, got {args.tensor_parallel}")


def _run_gptq(args: argparse.Namespace) -> int:
    if not args.static_groups and not args.desc_act:
        raise ConfigError("--dynamic-groups is a kind of act-order; it cannot go with --no-desc-act")
    config = GPTQConfig(bits=args.bits, group_size=args.group_size, sym=args.sym, desc_act=args.desc_act,
                        static_groups=args.static_groups, damp_percent=args.damp, block_size=args.block_size,
                        true_sequential=args.true_sequential, strict=args.strict)
    return _quantize(args, config, f"GPTQ {args.bits}-bit, group size {args.group_size}")


def _run_awq(args: argparse.Namespace) -> int:
    config = AWQConfig(bits=args.bits, group_size=args.group_size, zero_point=args.zero_point, n_grid=args.n_grid,
                       duo_scaling=args.duo_scaling, clip=args.clip, clip_cross_groups=args.clip_cross_groups)
    return _quantize(args, config, f"AWQ {args.bits}-bit, group size {args.group_size}")


def _quantize(args: argparse.Namespace, config: GPTQConfig | AWQConfig, title: str) -> int:
    calibration = _calibration(args)
    _preflight(args)
    print(f"{title}: {args.model_dir} -> {args.out_dir}")
    _quiet_third_party_loggers()
    from .allocator import return_freed_memory_to_os
    from .api import quantize_checkpoint

    return_freed_memory_to_os()  # long runs free large buffers every layer (allocator.py)
    with _progress_aware_logging():
        report = quantize_checkpoint(args.model_dir, args.out_dir, config, calib_data=args.calib,
                                     calibration=calibration, device=args.device,
                                     activations_device=args.activations_device, max_shard_size=args.max_shard_size,
                                     overwrite=args.overwrite, resume=args.resume,
                                     tensor_parallel=args.tensor_parallel, show_progress=not args.quiet)
    _print_summary(report, args.model_dir, args.out_dir)
    return 0


def _quiet_third_party_loggers() -> None:
    # torch configures its own loggers when imported, so import it before quieting them;
    # transformers and friends are chatty at INFO, our own modules keep INFO.
    import torch  # noqa: F401

    for noisy in ("transformers", "torch", "accelerate", "gptqmodel"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


@contextlib.contextmanager
def _progress_aware_logging() -> Iterator[None]:
    """Log lines go through the progress bar (tqdm.write), so they never glue onto it."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        yield


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
    check_output_dir(args.out_dir, args.overwrite)
    _quiet_third_party_loggers()
    from .api import write_demo_model

    path = write_demo_model(args.out_dir, family=args.family, preset=args.preset, seed=args.seed,
                            overwrite=args.overwrite)
    hint = "" if args.preset == "small" else " (quantize it with --group-size 32 or 64: its sizes are not multiples of 128)"
    print(f"wrote a random-weight {args.family} model ({args.preset}) to {path}{hint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
