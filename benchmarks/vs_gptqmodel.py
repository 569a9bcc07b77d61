"""qwen2vl-quant vs GPTQModel, side by side on the same model, data and settings (issue 6).

Both tools quantize the language model of the same random-weight Qwen2-VL with the real
Qwen2-VL-2B shapes (1.5 B language model + 0.67 B vision tower, BF16, built offline) to
GPTQ Int4, group 128, symmetric, no act-order, damp 0.01, on the same image calibration
conversations. Each tool runs in its own child process, one after the other (never at the
same time), and the parent measures:

  wall s       from spawning the child to reaping it (imports, model load, calibration,
               quantization and writing the checkpoint: what a user waits for);
  peak RSS     the sum of the resident set of the child and all its descendants, polled
               with psutil every 0.2 s (the figure in the table); also ru_maxrss from
               os.wait4 on that child (the kernel's exact peak of the largest single
               process of the tree, which is what getrusage(RUSAGE_CHILDREN) reports for a
               parent with that one child), and the cumulative RUSAGE_CHILDREN at the end;
  CPU s        user + system time of the child tree (from wait4): less sensitive to other
               jobs sharing the CPU than wall time.

Then a third child measures the output error of both checkpoints on held-out samples
(image + text conversations made by this script with another seed: no image or text of the
calibration set): the relative error of the final-layer hidden states (after the final
RMSNorm, the input of lm_head), ||h_q - h_bf16|| / ||h_bf16|| pooled over all tokens of all
held-out samples, against the BF16 model, every model in float32 (BF16 weights upcast
exactly) on the same processed inputs. The BF16 model is loaded with transformers'
from_pretrained; both quantized checkpoints with our ``load_quantized`` (which reads any GPTQ
v1 checkpoint of Qwen2-VL), so the error measures the weights each tool chose and nothing
else.

    # the full benchmark (about 30 min on 2 cores); reuses a model / calibration set if given
    python benchmarks/vs_gptqmodel.py --model-dir /tmp/b2/model --calib /tmp/b2/calib16.jsonl
    # a quick smoke run on the "small" preset (builds its own model and data)
    python benchmarks/vs_gptqmodel.py --preset small --workdir /tmp/vs_small

Writes benchmarks/results/vs_gptqmodel.md and .json (preset 2b-shapes), or
WORKDIR/vs_gptqmodel.md/.json for other presets, unless --results is given.

This script is the orchestration; its parts are in benchmarks/versus/: the fixed settings
(settings.py), the conversations (data.py), running and measuring a child (measure.py),
the children themselves (children.py) and the summary with its markdown (report.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from versus.children import child_eval, child_gptqmodel, gptqmodel_command, ours_command
from versus.data import check_disjoint, make_calibration, make_held_out, read_jsonl
from versus.measure import (
    child_env,
    load_average,
    machine_info,
    other_busy_processes,
    run_measured,
)
from versus.report import (
    build_summary,
    memory_estimate,
    model_summary,
    ours_stages,
    render_markdown,
)
from versus.settings import GB, REPO, RESULTS, SCRIPT


def prepare_model(args: argparse.Namespace) -> Path:
    """The model: --model-dir if it holds one of this preset's shape, else built there (or in
    WORKDIR/model-PRESET) in a child process, so the parent stays small."""
    from qwen2vl_quant.tiny_model import PRESETS

    model_dir = args.model_dir or args.workdir / f"model-{args.preset}"
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        print(f"building the {args.preset} random-weight Qwen2-VL in {model_dir} ...", flush=True)
        t = time.perf_counter()
        code = ("import sys, logging; logging.basicConfig(level=logging.INFO);"
                "from qwen2vl_quant.tiny_model import build_tiny_qwen2vl;"
                "build_tiny_qwen2vl(sys.argv[1], preset=sys.argv[2])")
        subprocess.run([sys.executable, "-c", code, str(model_dir), args.preset], check=True, cwd=REPO, env=child_env())
        print(f"built in {time.perf_counter() - t:.0f} s", flush=True)
    text = json.loads(config_path.read_text())["text_config"]
    p = PRESETS[args.preset]
    got = (text["hidden_size"], text["num_hidden_layers"], text["intermediate_size"])
    if got != (p.hidden, p.layers, p.intermediate):
        raise SystemExit(f"{model_dir} has shapes {got}, not those of preset {args.preset}")
    return model_dir


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))


def orchestrate(args: argparse.Namespace) -> int:
    args.workdir.mkdir(parents=True, exist_ok=True)
    results_stem = args.results or (RESULTS if args.preset == "2b-shapes" else args.workdir / "vs_gptqmodel")
    logs = args.workdir / "logs"
    logs.mkdir(exist_ok=True)
    machine = machine_info()
    machine["load_average_start"] = load_average()
    machine["other_busy_processes_start"] = other_busy_processes({os.getpid()})
    print(f"machine: {machine['cpu']}, {machine['cpu_cores']} cores, {machine['ram_gib']} GiB; "
          f"load average {machine['load_average_start']}; {machine['date']}", flush=True)
    for line in machine["other_busy_processes_start"]:
        print(f"  busy: {line}", flush=True)

    model_dir = prepare_model(args)
    calib = args.calib or make_calibration(args.workdir, args.samples)
    if len(read_jsonl(calib)) < args.samples:
        raise SystemExit(f"{calib} has fewer than {args.samples} conversations")
    held_out = make_held_out(args.workdir)
    disjoint = check_disjoint(calib, held_out)

    runs: dict = {}
    out_ours, out_theirs = args.workdir / "out-ours", args.workdir / "out-gptqmodel"
    gptqmodel_info = args.workdir / "gptqmodel_info.json"
    saved = args.workdir / "runs"  # each tool's measurement, saved as soon as it finishes
    saved.mkdir(exist_ok=True)
    # GPTQModel first, then ours: the order is fixed so that repeated runs compare alike.
    if not args.skip_gptqmodel:
        env = child_env({"GPTQMODEL_CPU_WORKERS": "2"})
        runs["gptqmodel"] = run_measured("gptqmodel", gptqmodel_command(model_dir, calib, out_theirs, args.samples,
                                                                          gptqmodel_info),
                                         env, logs / "gptqmodel.log", args.verbose)
        if gptqmodel_info.is_file():
            runs["gptqmodel"]["info"] = json.loads(gptqmodel_info.read_text())
        _save_run(saved / "gptqmodel.json", runs["gptqmodel"])
    if not args.skip_ours:
        staging = out_ours.parent / f".{out_ours.name}.partial"
        if staging.exists():  # a killed earlier run's staging: start from scratch, not resumed
            shutil.rmtree(staging)
        runs["ours"] = run_measured("ours", ours_command(model_dir, calib, out_ours, args.samples), child_env(),
                                    logs / "ours.log", args.verbose)
        report = out_ours / "quantization_report.json"
        if report.is_file():
            rep = json.loads(report.read_text())
            runs["ours"]["info"] = {"report_seconds": rep.get("seconds"), "calibration": rep.get("calibration"),
                                    "config": rep.get("config"), "stages": ours_stages(logs / "ours.log"),
                                    "memory_estimate": memory_estimate(model_dir, rep.get("calibration") or "")}
        _save_run(saved / "ours.json", runs["ours"])
    for name in args.reuse:
        if name in runs:
            raise SystemExit(f"--reuse {name}: that tool was run in this invocation")
        path = saved / f"{name}.json"
        if not path.is_file():
            raise SystemExit(f"--reuse {name}: no saved measurement at {path}")
        runs[name] = json.loads(path.read_text())
        runs[name]["reused_from"] = str(path)
        print(f"[{name}] reusing the measurement of an earlier invocation ({runs[name].get('finished')}): "
              f"wall {runs[name]['wall_s']} s, peak RSS {runs[name]['peak_rss_gb']} GB", flush=True)

    checkpoints = [f"{n}={d}" for n, d in (("gptqmodel", out_theirs), ("ours", out_ours))
                   if n in runs and runs[n]["returncode"] == 0]
    if args.eval_existing:
        checkpoints += [f"{n}={d}" for n, d in (("gptqmodel", out_theirs), ("ours", out_ours))
                        if n not in runs and (d / "config.json").is_file()]
    evaluation = None
    if checkpoints and not args.skip_eval:
        eval_info = args.workdir / "eval_info.json"
        cmd = [sys.executable, str(SCRIPT), "--child", "eval", "--model-dir", str(model_dir), "--heldout", str(held_out),
               "--eval-dtype", args.eval_dtype, "--info", str(eval_info)]
        for c in checkpoints:
            cmd += ["--checkpoint", c]
        runs["eval"] = run_measured("eval", cmd, child_env(), logs / "eval.log", True)
        if runs["eval"]["returncode"] == 0:
            evaluation = json.loads(eval_info.read_text())

    for name, out in (("gptqmodel", out_theirs), ("ours", out_ours)):
        if name in runs and runs[name]["returncode"] == 0:
            runs[name]["checkpoint_bytes"] = dir_bytes(out)
    machine["load_average_end"] = load_average()
    machine["other_busy_processes_end"] = other_busy_processes({os.getpid()})
    machine["rusage_children_maxrss_gb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / GB, 3)
    summary = build_summary(args, machine, model_summary(model_dir), calib, held_out, disjoint, runs, evaluation)
    Path(f"{results_stem}.json").parent.mkdir(parents=True, exist_ok=True)
    Path(f"{results_stem}.json").write_text(json.dumps(summary, indent=1) + "\n")
    md = render_markdown(summary)
    Path(f"{results_stem}.md").write_text(md)
    print()
    print(md)
    print(f"wrote {results_stem}.md and {results_stem}.json")
    return 0 if all(r["returncode"] == 0 for r in runs.values()) else 1


def _save_run(path: Path, run: dict) -> None:
    run["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    path.write_text(json.dumps(run, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="2b-shapes", choices=("2b-shapes", "small"),
                        help="model shapes: 2b-shapes (real Qwen2-VL-2B) or small (quick smoke run)")
    parser.add_argument("--samples", type=int, default=16, help="calibration conversations")
    parser.add_argument("--workdir", type=Path, default=None, help="default /tmp/vs_gptqmodel-PRESET")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="reuse this model directory (built there if it has no config.json)")
    parser.add_argument("--calib", type=Path, default=None, help="reuse this .jsonl calibration set (else generated)")
    parser.add_argument("--skip-gptqmodel", action="store_true")
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--reuse", action="append", default=[], choices=("gptqmodel", "ours"),
                        help="take this tool's measurement from WORKDIR/runs/NAME.json, saved by an earlier invocation "
                        "(e.g. one killed after that tool finished), instead of running it again; marked in the table")
    parser.add_argument("--eval-existing", action="store_true",
                        help="also evaluate checkpoints left in WORKDIR by an earlier run of a skipped tool")
    parser.add_argument("--eval-dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--results", type=Path, default=None, help="output path stem (.md and .json are added)")
    parser.add_argument("-v", "--verbose", action="store_true", help="echo the tools' output lines")
    # Internal: the child processes.
    parser.add_argument("--child", choices=("gptqmodel", "eval"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--info", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--heldout", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "gptqmodel":
        return child_gptqmodel(args)
    if args.child == "eval":
        return child_eval(args)
    args.workdir = args.workdir or Path(f"/tmp/vs_gptqmodel-{args.preset}")
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
