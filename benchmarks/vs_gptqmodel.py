"""qwen2vl-quant vs GPTQModel, side by side on the same model, data and settings (issues 6, 13).

Both tools quantize the language model of the same random-weight Qwen2-VL with the real
Qwen2-VL-2B shapes (1.5 B language model + 0.67 B vision tower, BF16, built offline) on the
same image calibration conversations, with ``--method``: GPTQ Int4, group 128, symmetric,
no act-order, damp 0.01 (issue 6), AWQ Int4, group 128, zero points (issue 13), or both,
GPTQ first. Each tool runs in its own child process, one after the other (never at the
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

    # the full benchmark, both methods (about an hour on 2 cores); reuses a model / calibration set if given
    python benchmarks/vs_gptqmodel.py --method both --model-dir /tmp/b2/model --calib /tmp/b2/calib16.jsonl
    # a quick run on the "small" preset (builds its own model and data), 128 samples
    python benchmarks/vs_gptqmodel.py --preset small --method awq --samples 128 --workdir /tmp/vs_small

Writes benchmarks/results/vs_gptqmodel.md|json (GPTQ) and vs_gptqmodel_awq.md|json (AWQ) for
preset 2b-shapes, or the same names in WORKDIR for other presets, unless --results is given.

This script is the orchestration; its parts are in benchmarks/versus/: the fixed settings
(settings.py), the conversations (data.py), running and measuring a child (measure.py),
the children themselves (children.py) and the summary with its markdown (report.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
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
from versus.settings import GB, METHODS, REPO, RESULTS_DIR, SCRIPT


def prepare_model(args: argparse.Namespace) -> Path:
    """The model: --model-dir if it holds one of this preset's shape, else built there (or in
    WORKDIR/model-PRESET) in a child process, so the parent stays small."""
    from qwen2vl_quant.testing.tiny_model import PRESETS

    model_dir = args.model_dir or args.workdir / f"model-{args.preset}"
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        print(f"building the {args.preset} random-weight Qwen2-VL in {model_dir} ...", flush=True)
        t = time.perf_counter()
        code = ("import sys, logging; logging.basicConfig(level=logging.INFO);"
                "from qwen2vl_quant.testing.tiny_model import build_tiny_qwen2vl;"
                "build_tiny_qwen2vl(sys.argv[1], preset=sys.argv[2])")
        subprocess.run([sys.executable, "-c", code, str(model_dir), args.preset], check=True, cwd=REPO, env=child_env())
        print(f"built in {time.perf_counter() - t:.0f} s", flush=True)
    text = json.loads(config_path.read_text())["text_config"]
    p = PRESETS[args.preset]
    got = (text["hidden_size"], text["num_hidden_layers"], text["intermediate_size"])
    if got != (p.hidden, p.layers, p.intermediate):
        raise SystemExit(f"{model_dir} has shapes {got}, not those of preset {args.preset}")
    if args.decoder_layers and args.decoder_layers < p.layers:
        return first_layers(model_dir, args.workdir / f"model-{args.preset}-{args.decoder_layers}layers",
                            args.decoder_layers)
    return model_dir


LAYER_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.")  # decoder layers only: vision blocks are "blocks.N"


def first_layers(model_dir: Path, out: Path, layers: int) -> Path:
    """A copy of ``model_dir`` with its first ``layers`` decoder layers (every other tensor,
    the vision tower included, unchanged): the same per-layer shapes and work, in a fraction
    of the time; wall times then compare per layer, as both tools quantize layer by layer."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    if (out / "config.json").is_file():
        return out
    print(f"writing the first {layers} decoder layers of {model_dir} to {out} ...", flush=True)
    staging = out.parent / f".{out.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    weight_map = {}
    for shard in sorted(model_dir.glob("*.safetensors")):
        tensors = {}
        with safe_open(str(shard), "pt") as f:
            for key in f.keys():
                m = LAYER_KEY.search(key)
                if m is None or int(m.group(1)) < layers:
                    tensors[key] = f.get_tensor(key)
        if tensors:
            save_file(tensors, str(staging / shard.name), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(tensors, shard.name))
    if (model_dir / "model.safetensors.index.json").is_file():
        (staging / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": sum(f.stat().st_size for f in staging.glob("*.safetensors"))},
             "weight_map": weight_map}, indent=2))
    for f in model_dir.iterdir():
        if f.is_file() and not f.name.startswith("model") and f.name != "config.json":
            shutil.copy(f, staging / f.name)
    config = json.loads((model_dir / "config.json").read_text())
    for block in (config, config["text_config"]):
        if "num_hidden_layers" in block:
            block["num_hidden_layers"] = layers
        if "max_window_layers" in block:
            block["max_window_layers"] = layers
        if isinstance(block.get("layer_types"), list):
            block["layer_types"] = block["layer_types"][:layers]
    (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    staging.rename(out)
    return out


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))


def orchestrate(args: argparse.Namespace) -> int:
    args.workdir.mkdir(parents=True, exist_ok=True)
    methods = [METHODS[name] for name in (("gptq", "awq") if args.method == "both" else (args.method,))]
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

    saved = args.workdir / "runs"  # each measurement, saved as soon as it finishes
    saved.mkdir(exist_ok=True)
    runs: dict[str, dict] = {m.name: {} for m in methods}
    outputs = {(tool, m.name): args.workdir / f"out-{tool}-{m.name}" for m in methods for tool in TOOLS}
    # Per method, GPTQModel first, then ours: the order is fixed so that repeated runs compare alike.
    for method in methods:
        for tool in TOOLS:
            key = f"{tool}-{method.name}"
            if tool in args.reuse:
                runs[method.name][tool] = _reused(saved / f"{key}.json", key)
            elif not (tool == "gptqmodel" and args.skip_gptqmodel) and not (tool == "ours" and args.skip_ours):
                runs[method.name][tool] = _run_tool(tool, method, model_dir, calib, outputs[tool, method.name], args,
                                                    logs)
                _save_run(saved / f"{key}.json", runs[method.name][tool])

    checkpoints = [f"{tool}-{name}={outputs[tool, name]}" for name, by_tool in runs.items()
                   for tool, run in by_tool.items() if run["returncode"] == 0]
    if args.eval_existing:
        checkpoints += [f"{tool}-{name}={d}" for (tool, name), d in outputs.items()
                        if tool not in runs[name] and (d / "config.json").is_file()]
    evaluation, eval_run = None, None
    if checkpoints and not args.skip_eval:
        eval_info = args.workdir / "eval_info.json"
        cmd = [sys.executable, str(SCRIPT), "--child", "eval", "--model-dir", str(model_dir), "--heldout", str(held_out),
               "--eval-dtype", args.eval_dtype, "--info", str(eval_info)]
        for c in checkpoints:
            cmd += ["--checkpoint", c]
        eval_run = run_measured("eval", cmd, child_env(), logs / "eval.log", True)
        if eval_run["returncode"] == 0:
            evaluation = json.loads(eval_info.read_text())

    for (tool, name), out in outputs.items():
        if tool in runs[name] and runs[name][tool]["returncode"] == 0 and out.is_dir():
            runs[name][tool]["checkpoint_bytes"] = dir_bytes(out)
    machine["load_average_end"] = load_average()
    machine["other_busy_processes_end"] = other_busy_processes({os.getpid()})
    machine["rusage_children_maxrss_gb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / GB, 3)
    failed = eval_run is not None and eval_run["returncode"] != 0
    for method in methods:
        method_runs = dict(runs[method.name])
        if eval_run is not None:
            method_runs["eval"] = eval_run
        # AWQ against our own GPTQ on the same model and data, when both ran in this invocation.
        own_gptq = runs.get("gptq", {}).get("ours") if method.name == "awq" else None
        summary = build_summary(args, method, machine, model_summary(model_dir), calib, held_out, disjoint,
                                method_runs, evaluation, own_gptq)
        stem = args.results or (RESULTS_DIR / method.results_stem if args.preset == "2b-shapes"
                                else args.workdir / method.results_stem)
        if args.results and len(methods) > 1:
            stem = Path(f"{args.results}_{method.name}")
        Path(f"{stem}.json").parent.mkdir(parents=True, exist_ok=True)
        Path(f"{stem}.json").write_text(json.dumps(summary, indent=1) + "\n")
        md = render_markdown(summary)
        Path(f"{stem}.md").write_text(md)
        print()
        print(md)
        print(f"wrote {stem}.md and {stem}.json")
        failed |= any(r["returncode"] != 0 for r in runs[method.name].values())
    return 1 if failed else 0


TOOLS = ("gptqmodel", "ours")


def _run_tool(tool: str, method, model_dir: Path, calib: Path, out: Path, args: argparse.Namespace,
              logs: Path) -> dict:
    key = f"{tool}-{method.name}"
    if tool == "gptqmodel":
        info = args.workdir / f"{key}_info.json"
        run = run_measured(key, gptqmodel_command(method, model_dir, calib, out, args.samples, info),
                           child_env({"GPTQMODEL_CPU_WORKERS": "2"}), logs / f"{key}.log", args.verbose)
        if info.is_file():
            run["info"] = json.loads(info.read_text())
        return run
    staging = out.parent / f".{out.name}.partial"
    if staging.exists():  # a killed earlier run's staging: start from scratch, not resumed
        shutil.rmtree(staging)
    run = run_measured(key, ours_command(method, model_dir, calib, out, args.samples), child_env(),
                       logs / f"{key}.log", args.verbose)
    report = out / "quantization_report.json"
    if report.is_file():
        rep = json.loads(report.read_text())
        run["info"] = {"report_seconds": rep.get("seconds"), "calibration": rep.get("calibration"),
                       "config": rep.get("config"), "stages": ours_stages(logs / f"{key}.log"),
                       "memory_estimate": memory_estimate(model_dir, rep.get("calibration") or "")}
    return run


def _reused(path: Path, key: str) -> dict:
    if not path.is_file():
        raise SystemExit(f"--reuse: no saved measurement of {key} at {path}")
    run = json.loads(path.read_text())
    run["reused_from"] = str(path)
    print(f"[{key}] reusing the measurement of an earlier invocation ({run.get('finished')}): "
          f"wall {run['wall_s']} s, peak RSS {run['peak_rss_gb']} GB", flush=True)
    return run


def _save_run(path: Path, run: dict) -> None:
    run["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    path.write_text(json.dumps(run, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="2b-shapes", choices=("2b-shapes", "small"),
                        help="model shapes: 2b-shapes (real Qwen2-VL-2B) or small (quick smoke run)")
    parser.add_argument("--method", default="gptq", choices=("gptq", "awq", "both"),
                        help="GPTQ Int4 (issue 6), AWQ Int4 (issue 13) or both, one after the other")
    parser.add_argument("--samples", type=int, default=16, help="calibration conversations")
    parser.add_argument("--decoder-layers", type=int, default=None,
                        help="quantize a copy with only the first N decoder layers (same shapes per layer, vision "
                        "tower whole): for a peer whose full run takes hours")
    parser.add_argument("--workdir", type=Path, default=None, help="default /tmp/vs_gptqmodel-PRESET")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="reuse this model directory (built there if it has no config.json)")
    parser.add_argument("--calib", type=Path, default=None, help="reuse this .jsonl calibration set (else generated)")
    parser.add_argument("--skip-gptqmodel", action="store_true")
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--reuse", action="append", default=[], choices=("gptqmodel", "ours"),
                        help="take this tool's measurement from WORKDIR/runs/TOOL-METHOD.json, saved by an earlier "
                        "invocation (e.g. one killed after that tool finished), instead of running it again; marked "
                        "in the table")
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
