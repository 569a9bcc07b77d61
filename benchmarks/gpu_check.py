"""The GPU check (issue 17): one command that measures what only a GPU can tell, prepared
before any GPU ran it.

    python benchmarks/gpu_check.py              # one CUDA GPU: at most 8 minutes on an H100
    python benchmarks/gpu_check.py --dry-run    # CPU, tiny shapes, the Triton interpreter: seconds

Four parts, each in its own time budget (a part that runs out records what it skipped, and
a part that fails records its one-line error; the others still run):

1. correctness: every Triton path (decode, GEMM, dequant) of every format (GPTQ Int4 with
   and without act-order, AWQ Int4, GPTQ Int8 grouped and per-channel, AWQ Int8) against the
   reference dequantize + float32 matmul, M = 1, 16, 256, on the 2B and 7B Linear shapes,
   compiled for the device (not the interpreter), bf16 activations (and fp16 at M = 16);
2. kernels: the automatic path against a BF16 F.linear of the same shape (ratio and GB/s
   against the device's bandwidth), M = 1, 16, 256, 2B and 7B shapes, and vLLM's Marlin on
   the same GPTQ Int4 shapes when vLLM is importable;
3. quantize: the random-weight model with the real Qwen2-VL-2B shapes quantized on the GPU
   with our GPTQ Int4, GPTQ Int8 and AWQ Int4 (wall time, peak GPU memory), and with
   GPTQModel's GPTQ and AWQ when gptqmodel is importable;
4. decode: batch-1 generation with our loader, BF16 against the three checkpoints of part 3,
   input lengths 1 and 6144 as in the README's speed table (fewer new tokens than its 2048,
   to fit the budget), tokens/s and peak GPU memory, each model in a fresh process.

Targets (issue 17) are checked at the end: the M = 1 kernel at least 2.5x a BF16 linear on
the 7B shapes and at least 60 % of the device's memory bandwidth (a whole layer's Linears,
GPTQ Int4); end-to-end 2B GPTQ-Int4 decode at least 1.8x BF16. The exit status is 1 when a
correctness check fails or a part crashes; a missed target is reported, not an error.

Writes benchmarks/results/gpu_check.md|json (--dry-run: into a temporary folder unless
--out is given, so that a CI run never replaces the committed GPU results).

The device machine has no network and its own torch: install the package there without
dependencies first, `python -m pip install --no-deps --no-build-isolation -e .`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def _wants_interpreter(argv: list[str]) -> bool:
    # Triton chooses the interpreter when the kernels are imported: decide before that.
    if "--dry-run" not in argv:
        return False
    import torch

    return not torch.cuda.is_available() or "--device" in argv and "cpu" in argv


if __name__ == "__main__" and _wants_interpreter(sys.argv[1:]):
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))  # bench_kernels, versus

from bench_kernels import SHAPES, machine, peak_gbs, quant_bytes, time_ms  # noqa: E402
from versus.data import make_calibration  # noqa: E402
from versus.measure import child_env  # noqa: E402

from qwen2vl_quant.benchmark.speed import one_line  # noqa: E402
from qwen2vl_quant.kernels.dispatch import TRITON_PATHS, available_paths, prepare, quantized_linear  # noqa: E402
from qwen2vl_quant.kernels.configs import DECODE_MAX_M  # noqa: E402
from qwen2vl_quant.kernels.layout import PackedFormat  # noqa: E402
from qwen2vl_quant.kernels.reference import dequantize  # noqa: E402
from qwen2vl_quant.testing.packed import random_packed  # noqa: E402

# name -> (layout, bits, group_size, act_order)
FORMATS = {
    "gptq4": ("gptq", 4, 128, False),
    "gptq4_act_order": ("gptq", 4, 128, True),
    "awq4": ("awq", 4, 128, False),
    "gptq8": ("gptq", 8, 128, False),
    "gptq8_per_channel": ("gptq", 8, -1, False),
    "awq8": ("awq", 8, 128, False),
}
SPEED_FORMATS = ("gptq4", "awq4", "gptq8")
TINY_SHAPES = {"tiny": {"q_o_proj": (256, 256), "k_v_proj": (256, 128), "gate_up_proj": (256, 512),
                        "down_proj": (512, 256)}}
# How many of each projection one decoder layer runs (q, k, v, o; gate and up; down).
PER_LAYER = {"q_o_proj": 2, "k_v_proj": 2, "gate_up_proj": 2, "down_proj": 1}
# Relative error (Frobenius) of a path against the float32 reference: the output is rounded
# to 16 bits once (2**-8 relative for bf16) and accumulation orders differ.
TOLERANCE = {torch.bfloat16: 1e-2, torch.float16: 3e-3}
TARGETS = {"kernel_m1_vs_bf16_7b": 2.5, "kernel_m1_bandwidth_pct_7b": 60.0, "decode_gptq4_vs_bf16_2b": 1.8}


class Budget:
    """A part's time allowance: ``left()`` seconds remain; ``over()`` once it is spent."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.start = seconds, time.perf_counter()

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)

    def over(self) -> bool:
        return self.left() <= 0


def log(message: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------- part 1: correctness
def check_correctness(shapes: dict, ms: tuple[int, ...], device: torch.device, budget: Budget) -> dict:
    rows, skipped = [], 0
    for model, projs in shapes.items():
        for proj, (k, n) in projs.items():
            for name, (layout, bits, group_size, act_order) in FORMATS.items():
                if budget.over():
                    skipped += 1
                    continue
                w = random_packed(layout, bits, k, n, group_size, act_order=act_order, device=device)
                prepared = prepare(layout, bits, group_size, w.qweight, w.qzeros, w.scales, w.g_idx, device)
                dense = dequantize(layout, w.qweight, w.qzeros, w.scales, w.group, bits, w.g_idx, dtype=torch.float32)
                paths = [p for p in available_paths(prepared) if p in TRITON_PATHS]
                for m in ms:
                    dtypes = (torch.bfloat16, torch.float16) if m == 16 else (torch.bfloat16,)
                    for dtype in dtypes:
                        x = torch.randn(m, k, device=device).to(dtype)
                        ref = x.float() @ dense
                        for path in paths:
                            if path == "triton_decode" and m > DECODE_MAX_M:
                                continue
                            row = {"model": model, "proj": proj, "k": k, "n": n, "format": name, "m": m,
                                   "dtype": str(dtype).removeprefix("torch."), "path": path}
                            try:
                                y = quantized_linear(x, prepared, path=path).float()
                                err = ((y - ref).norm() / ref.norm().clamp_min(1e-30)).item()
                                row.update(rel_error=err, ok=bool(err <= TOLERANCE[dtype]))
                            except Exception as exc:  # recorded, and the check fails
                                row.update(rel_error=None, ok=False, error=one_line(exc))
                            rows.append(row)
                bad = [r for r in rows[-20:] if not r["ok"] and r["format"] == name and r["proj"] == proj]
                log(f"correctness {model} {proj} {name}: {'FAIL ' + str(bad[0]) if bad else 'ok'}")
    failed = [r for r in rows if not r["ok"]]
    return {"rows": rows, "checked": len(rows), "failed": len(failed), "skipped_formats": skipped,
            "ok": not failed and skipped == 0}


# ---------------------------------------------------------------------- part 2: kernel speed
def marlin_peer(k: int, n: int, device: torch.device):
    """A callable x -> y running vLLM's GPTQ Marlin on a random Int4 group-128 weight of this
    shape, or the reason there is none."""
    try:
        import inspect

        from vllm.model_executor.layers.quantization.utils import marlin_utils
        from vllm.model_executor.layers.quantization.utils.marlin_utils_test import marlin_quantize
        from vllm.scalar_type import scalar_types
    except Exception as exc:
        return None, f"vLLM not importable ({one_line(exc)})"
    try:
        w = torch.randn(k, n, dtype=torch.bfloat16, device=device) / k**0.5
        _, q, s = marlin_quantize(w, scalar_types.uint4b8, 128)[:3]
        empty = torch.empty(0, dtype=torch.int, device=device)
        workspace = marlin_utils.marlin_make_workspace_new(device)
        wanted = {"weight": q, "weight_scale": s, "weight_zp": empty, "g_idx": empty, "g_idx_sort_indices": empty,
                  "workspace": workspace, "wtype": scalar_types.uint4b8, "output_size_per_partition": n,
                  "input_size_per_partition": k, "is_k_full": True, "bias": None}
        params = inspect.signature(marlin_utils.apply_gptq_marlin_linear).parameters
        kwargs = {key: value for key, value in wanted.items() if key in params}
        return (lambda x: marlin_utils.apply_gptq_marlin_linear(input=x, **kwargs)), None
    except Exception as exc:
        return None, f"Marlin setup failed ({one_line(exc)})"


def bench_kernels(shapes: dict, ms: tuple[int, ...], device: torch.device, min_time: float, budget: Budget) -> dict:
    peak = peak_gbs(torch.cuda.get_device_name()) if device.type == "cuda" else None
    rows, peer_note, skipped = [], None, 0
    for model, projs in shapes.items():
        for proj, (k, n) in projs.items():
            dense = torch.randn(n, k, dtype=torch.bfloat16, device=device) / k**0.5
            peer, why = marlin_peer(k, n, device) if device.type == "cuda" else (None, "no GPU")
            peer_note = peer_note or why
            for name in SPEED_FORMATS:
                if budget.over():
                    skipped += 1
                    continue
                layout, bits, group_size, _ = FORMATS[name]
                w = random_packed(layout, bits, k, n, group_size, device=device)
                prepared = prepare(layout, bits, group_size, w.qweight, w.qzeros, w.scales, w.g_idx, device)
                for m in ms:
                    x = torch.randn(m, k, dtype=torch.bfloat16, device=device)
                    t_lin = time_ms(lambda x=x: F.linear(x, dense), device, min_time)
                    t = time_ms(lambda x=x: quantized_linear(x, prepared), device, min_time)
                    path = next(p for (mm, p) in prepared.calls if mm == m)
                    gbs = quant_bytes(PackedFormat(layout, bits), k, n, w.group, m) / t / 1e6
                    row = {"model": model, "proj": proj, "k": k, "n": n, "format": name, "m": m, "path": path,
                           "ms": t, "bf16_ms": t_lin, "speedup": t_lin / t, "gbs": gbs,
                           "pct_of_peak": 100 * gbs / peak if peak else None, "marlin_ms": None}
                    if peer is not None and name == "gptq4":
                        try:
                            row["marlin_ms"] = time_ms(lambda x=x: peer(x), device, min_time)
                        except Exception as exc:
                            peer, peer_note = None, f"Marlin failed ({one_line(exc)})"
                    rows.append(row)
                    log(f"kernels {model} {proj} {name} M={m}: {path} {t:.4f} ms, bf16 {t_lin:.4f} ms, "
                        f"x{t_lin / t:.2f}, {gbs:.0f} GB/s")
    return {"rows": rows, "peak_gbs": peak, "peer": peer_note or "vLLM Marlin", "skipped_formats": skipped}


def layer_figures(kernels: dict, model: str, fmt: str, m: int) -> dict | None:
    """A decoder layer's Linears (PER_LAYER) at M rows: time ratio to BF16, GB/s, share of peak."""
    picked = [r for r in kernels.get("rows", []) if r["model"] == model and r["format"] == fmt and r["m"] == m]
    if {r["proj"] for r in picked} != set(PER_LAYER):
        return None
    ms = sum(PER_LAYER[r["proj"]] * r["ms"] for r in picked)
    bf16 = sum(PER_LAYER[r["proj"]] * r["bf16_ms"] for r in picked)
    moved = sum(PER_LAYER[r["proj"]] * r["gbs"] * r["ms"] * 1e6 for r in picked)  # bytes
    gbs = moved / ms / 1e6
    peak = kernels.get("peak_gbs")
    return {"ms": ms, "bf16_ms": bf16, "speedup": bf16 / ms, "gbs": gbs, "pct_of_peak": 100 * gbs / peak if peak else None}


# ---------------------------------------------------------------------- part 3: quantization
def build_model(preset: str, work: Path) -> Path:
    from qwen2vl_quant.testing.tiny_model import build_tiny_qwen2vl

    model_dir = work / f"model-{preset}"
    if not (model_dir / "config.json").is_file():
        log(f"building the {preset} random-weight Qwen2-VL in {model_dir}")
        build_tiny_qwen2vl(model_dir, preset=preset)
    return model_dir


def cuda_peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def quantize_all(model_dir: Path, calib: Path, samples: int, work: Path, device: torch.device, budget: Budget,
                 with_peer: bool) -> dict:
    from qwen2vl_quant.api import quantize_checkpoint
    from qwen2vl_quant.config import AWQConfig, CalibrationConfig, GPTQConfig

    ours = {"GPTQ-Int4": GPTQConfig(bits=4), "GPTQ-Int8": GPTQConfig(bits=8), "AWQ": AWQConfig(bits=4)}
    rows, outputs = [], {}
    for label, config in ours.items():
        if budget.over():
            rows.append({"tool": "qwen2vl-quant", "label": label, "error": "skipped: out of time"})
            continue
        out = work / f"ours-{label.lower()}"
        cuda_peak_reset(device)
        t = time.perf_counter()
        try:
            quantize_checkpoint(model_dir, out, config, calib_data=str(calib),
                                calibration=CalibrationConfig(num_samples=samples), device=str(device),
                                show_progress=False, overwrite=True)
        except Exception as exc:
            rows.append({"tool": "qwen2vl-quant", "label": label, "error": one_line(exc)})
            log(f"quantize ours {label}: FAILED {one_line(exc)}")
            continue
        wall = time.perf_counter() - t
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        rows.append({"tool": "qwen2vl-quant", "label": label, "wall_s": wall, "peak_gpu_bytes": peak})
        outputs[label] = out
        log(f"quantize ours {label}: {wall:.1f} s, peak GPU {_gb(peak)}")
    for method in ("gptq", "awq"):
        label = f"GPTQModel {method.upper()}"
        if not with_peer:
            rows.append({"tool": "GPTQModel", "label": label, "error": "skipped (--no-peer)"})
            continue
        if budget.over():
            rows.append({"tool": "GPTQModel", "label": label, "error": "skipped: out of time"})
            continue
        rows.append(quantize_gptqmodel(method, model_dir, calib, samples, work, budget))
        log(f"quantize {label}: {rows[-1]}")
    return {"rows": rows, "outputs": {k: str(v) for k, v in outputs.items()}, "samples": samples}


def quantize_gptqmodel(method: str, model_dir: Path, calib: Path, samples: int, work: Path, budget: Budget) -> dict:
    """GPTQModel in its own process (benchmarks/vs_gptqmodel.py's child, same settings as there)."""
    row = {"tool": "GPTQModel", "label": f"GPTQModel {method.upper()}"}
    try:
        import importlib.util

        if importlib.util.find_spec("gptqmodel") is None:
            return {**row, "error": "gptqmodel not installed"}
    except Exception as exc:
        return {**row, "error": one_line(exc)}
    info = work / f"gptqmodel-{method}.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "vs_gptqmodel.py"), "--child", "gptqmodel", "--method", method,
           "--model-dir", str(model_dir), "--calib", str(calib), "--samples", str(samples),
           "--out", str(work / f"gptqmodel-{method}"), "--info", str(info)]
    t = time.perf_counter()
    try:
        # GPTQModel's worker pools ask for 2 CPU workers by default and refuse fewer cores.
        env = child_env({"GPTQMODEL_CPU_WORKERS": str(min(2, os.cpu_count() or 1))})
        run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=max(10.0, budget.left()),
                             check=False)
    except subprocess.TimeoutExpired:
        return {**row, "error": f"out of time after {time.perf_counter() - t:.0f} s"}
    if run.returncode != 0:
        tail = (run.stderr or run.stdout).strip().splitlines()
        return {**row, "error": tail[-1][:300] if tail else f"exit {run.returncode}"}
    got = json.loads(info.read_text())
    return {**row, "wall_s": time.perf_counter() - t, "peak_gpu_bytes": got.get("peak_cuda_bytes")}


# ---------------------------------------------------------------------- part 4: decode
def decode_speed(model_dir: Path, outputs: dict, lengths: tuple[int, ...], new_tokens: int, device: torch.device,
                 budget: Budget) -> dict:
    from qwen2vl_quant.benchmark import SpeedConfig, run_benchmark

    quantized = [f"{label}={path}" for label, path in outputs.items()]
    per_run = max(30.0, budget.left() / max(1, (1 + len(quantized)) * len(lengths)) * 2)
    report = run_benchmark(model_dir, quantized, speed=SpeedConfig(input_lengths=lengths, new_tokens=new_tokens,
                                                                   image_size=0, timeout_s=per_run),
                           quality=None, device=str(device), show_progress=False)
    rows = [{"label": r.quantization, "input_length": r.input_length, "new_tokens": r.new_tokens,
             "tokens_per_s": r.tokens_per_s, "prefill_s": r.prefill_s, "memory_bytes": r.memory_bytes,
             "memory_kind": r.memory_kind, "kernel_path": r.kernel_path, "error": r.error} for r in report.speed]
    for r in rows:
        log(f"decode {r['label']} len {r['input_length']}: {r['tokens_per_s']} tok/s, {_gb(r['memory_bytes'])}"
            + (f" ({r['error']})" if r["error"] else ""))
    return {"rows": rows, "speed_markdown": report.speed_markdown()}


def decode_ratio(decode: dict, label: str, length: int = 1) -> float | None:
    speed = {(r["label"], r["input_length"]): r["tokens_per_s"] for r in decode.get("rows", [])}
    q, b = speed.get((label, length)), speed.get(("BF16", length))
    return q / b if q and b else None


# ---------------------------------------------------------------------- report
def _gb(x) -> str:
    return "-" if x is None else f"{x / 1e9:.2f} GB"


def _f(x, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def targets(result: dict, big: str) -> list[dict]:
    out = []
    layer = layer_figures(result.get("kernels", {}), big, "gptq4", 1)
    out.append({"target": f"M = 1 GPTQ-Int4 layer on {big} shapes vs BF16 linear", "want": ">= 2.5x",
                "got": layer and layer["speedup"], "met": bool(layer and layer["speedup"] >= TARGETS["kernel_m1_vs_bf16_7b"])})
    pct = layer and layer["pct_of_peak"]
    out.append({"target": f"M = 1 GPTQ-Int4 layer on {big} shapes, share of memory bandwidth", "want": ">= 60 %",
                "got": pct, "met": bool(pct and pct >= TARGETS["kernel_m1_bandwidth_pct_7b"])})
    ratio = decode_ratio(result.get("decode", {}), "GPTQ-Int4")
    out.append({"target": "end-to-end 2B GPTQ-Int4 decode (input length 1) vs BF16", "want": ">= 1.8x",
                "got": ratio, "met": bool(ratio and ratio >= TARGETS["decode_gptq4_vs_bf16_2b"])})
    return out


def markdown(result: dict) -> str:
    m = result["machine"]
    out = ["# GPU check", "", f"`python benchmarks/gpu_check.py {' '.join(result['argv'])}`".replace("  ", " "), "",
           f"- date: {m.get('date')}; device: {m.get('device')} {m.get('gpu', '')}; torch {m.get('torch')}, "
           f"triton {m.get('triton')}; CPU {m.get('cpu')} x {m.get('cpu_count')}",
           f"- dry run: {result['dry_run']}; total {result['seconds']:.0f} s; parts: "
           + ", ".join(f"{k} {v:.0f} s" for k, v in result["part_seconds"].items()), ""]
    if result.get("errors"):
        out += ["## Errors", ""] + [f"- {k}: {v}" for k, v in result["errors"].items()] + [""]
    out += ["## Targets", "", "| target | want | got | met |", "|---|---|---|---|"]
    for t in result["targets"]:
        out.append(f"| {t['target']} | {t['want']} | {_f(t['got'], '.2f')} | {'yes' if t['met'] else 'NO'} |")
    c = result.get("correctness")
    if c:
        out += ["", "## Correctness: Triton paths against the float32 reference", "",
                f"{c['checked']} checks, {c['failed']} failed, {c['skipped_formats']} format/shape pairs skipped "
                f"(out of time). Tolerance: relative Frobenius error {TOLERANCE[torch.bfloat16]} (bf16), "
                f"{TOLERANCE[torch.float16]} (fp16).", "",
                "| format | path | checks | worst relative error | failed |", "|---|---|---|---|---|"]
        groups: dict = {}
        for r in c["rows"]:
            g = groups.setdefault((r["format"], r["path"]), [0, 0.0, 0])
            g[0] += 1
            g[1] = max(g[1], r["rel_error"] if r["rel_error"] is not None else float("inf"))
            g[2] += not r["ok"]
        for (fmt, path), (n, worst, bad) in groups.items():
            out.append(f"| {fmt} | {path} | {n} | {worst:.2e} | {bad} |")
    k = result.get("kernels")
    if k:
        out += ["", "## Kernels: automatic path against a BF16 F.linear", "",
                f"Peer: {k['peer']}. Device bandwidth: {_f(k['peak_gbs'], '.0f')} GB/s.", "",
                "| model | proj | K | N | format | M | path | ms | bf16 ms | speedup | GB/s | % peak | Marlin ms |",
                "|" + "---|" * 13]
        for r in k["rows"]:
            out.append(f"| {r['model']} | {r['proj']} | {r['k']} | {r['n']} | {r['format']} | {r['m']} | {r['path']} | "
                       f"{r['ms']:.4f} | {r['bf16_ms']:.4f} | {r['speedup']:.2f} | {r['gbs']:.0f} | "
                       f"{_f(r['pct_of_peak'], '.0f')} | {_f(r['marlin_ms'], '.4f')} |")
    q = result.get("quantize")
    if q:
        out += ["", f"## Quantization of the 2B shapes on the device ({q['samples']} calibration conversations)", "",
                "| tool | method | wall s | peak GPU memory | note |", "|---|---|---|---|---|"]
        for r in q["rows"]:
            out.append(f"| {r['tool']} | {r['label']} | {_f(r.get('wall_s'), '.1f')} | {_gb(r.get('peak_gpu_bytes'))} | "
                       f"{r.get('error') or ''} |")
    d = result.get("decode")
    if d:
        out += ["", "## End-to-end decode, batch 1 (our loader)", "", d["speed_markdown"]]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes on this machine's device (CI)")
    parser.add_argument("--device", default=None, help="default: cuda if present, else cpu (dry runs only)")
    parser.add_argument("--out", type=Path, default=None, help="folder for gpu_check.md|json")
    parser.add_argument("--workdir", type=Path, default=None, help="models and checkpoints (default: a temporary folder)")
    parser.add_argument("--samples", type=int, default=None, help="calibration conversations (default 16; dry run 2)")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens per decode run (default 128; dry run 4)")
    parser.add_argument("--no-peer", action="store_true", help="skip GPTQModel's quantization")
    parser.add_argument("--parts", nargs="+", default=["correctness", "kernels", "quantize", "decode"],
                        choices=["correctness", "kernels", "quantize", "decode"])
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda" and not args.dry_run:
        print("gpu_check: no CUDA GPU here; run with --dry-run for the CPU rehearsal", file=sys.stderr)
        return 2
    dry = args.dry_run
    shapes = TINY_SHAPES if dry else SHAPES
    big = "tiny" if dry else "7b"
    ms = (1, 16, 32) if dry else (1, 16, 256)
    samples = args.samples or (2 if dry else 16)
    new_tokens = args.new_tokens or (4 if dry else 128)
    lengths = (1, 64) if dry else (1, 6144)
    out_dir = args.out or (Path(tempfile.mkdtemp(prefix="gpu_check_")) if dry else RESULTS)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gpu_check_work_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return run_parts(args, device, dry, shapes, big, ms, samples, new_tokens, lengths, out_dir, work)
    finally:
        if args.workdir is None:  # models and checkpoints we made: a few GB on the 2B shapes
            shutil.rmtree(work, ignore_errors=True)


def run_parts(args, device, dry, shapes, big, ms, samples, new_tokens, lengths, out_dir, work) -> int:
    # Seconds per part: 8 minutes on one H100 in all, with room for start-up and the report.
    budgets = {"correctness": 60, "kernels": 90, "quantize": 180, "decode": 120}
    meta = machine()
    meta["device"] = str(device)
    result: dict = {"machine": meta, "argv": args.argv, "dry_run": dry,
                    "part_seconds": {}, "errors": {}}
    start = time.perf_counter()
    outputs: dict = {}
    model_dir = None
    for part in args.parts:
        budget = Budget(budgets[part] * (10 if dry and device.type == "cpu" else 1))
        t = time.perf_counter()
        log(f"part {part} (budget {budget.seconds:.0f} s)")
        try:
            if part == "correctness":
                result[part] = check_correctness(shapes, ms, device, budget)
            elif part == "kernels":
                result[part] = bench_kernels(shapes, ms, device, 0.02 if dry else 0.1, budget)
            elif part in ("quantize", "decode"):
                if model_dir is None:
                    model_dir = build_model("small" if dry else "2b-shapes", work)
                    calib = make_calibration(work, samples)
                if part == "quantize":
                    result[part] = quantize_all(model_dir, calib, samples, work, device, budget, not args.no_peer)
                    outputs = {k: Path(v) for k, v in result[part]["outputs"].items()}
                    failed = [f"{r['label']}: {r['error']}" for r in result[part]["rows"]
                              if r["tool"] == "qwen2vl-quant" and r.get("error")]
                else:
                    result[part] = decode_speed(model_dir, outputs, lengths, new_tokens, device, budget)
                    failed = [f"{r['label']} length {r['input_length']}: {r['error']}" for r in result[part]["rows"]
                              if r["error"]]
                if failed:
                    result["errors"][part] = "; ".join(failed)
        except Exception as exc:
            result["errors"][part] = one_line(exc)
            log(f"part {part} FAILED: {one_line(exc)}")
            traceback.print_exc()
        result["part_seconds"][part] = time.perf_counter() - t
    result["seconds"] = time.perf_counter() - start
    result["targets"] = targets(result, big)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_check.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out_dir / "gpu_check.md").write_text(markdown(result))
    for t in result["targets"]:
        log(f"target {t['target']}: {_f(t['got'], '.2f')} ({t['want']}) {'met' if t['met'] else 'NOT met'}")
    log(f"wrote {out_dir / 'gpu_check.md'} and .json in {result['seconds']:.0f} s")
    correctness_failed = result.get("correctness", {}).get("failed", 0) > 0
    return 1 if result["errors"] or correctness_failed else 0


if __name__ == "__main__":
    sys.exit(main())
