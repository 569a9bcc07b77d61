"""Kernel benchmark: each quantized-linear path against a bf16 F.linear on the same device.

For the linear shapes of Qwen2-VL-2B and -7B and M = 1, 4, 16, 64, 256, 2048 rows, it
times every path kernels.dispatch can run (on CPU: the C++ GEMV and GEMM, torch's
int4/int8 ops and torch dequantize + matmul; on a GPU: the three Triton paths), reports
the speedup over the bf16 linear (> 1 is faster) and the achieved GB/s over the bytes the call must move
(packed weight + scales + zeros + x + y; for the bf16 linear, its weight + x + y), and
on a GPU the share of the device's bandwidth. It also cross-compiles the shipped kernel
configs for sm_80/sm_90 and lists registers, spills and shared memory.

    python benchmarks/bench_kernels.py --quick          # 2B shapes, M = 1, 16, 64, 256: ~1-2 min on 2 cores
    python benchmarks/bench_kernels.py --models 7b --m 1 16 --formats gptq4
    python benchmarks/bench_kernels.py --auto-only --no-compile --name kernels_auto  # every shape and M, the
                                                        # automatic path only: ~5 min on 2 cores

Writes benchmarks/results/kernels.md and kernels.json (override with --out and --name).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import triton

from qwen2vl_quant.kernels import cpu_fused
from qwen2vl_quant.kernels.compile_check import check_shipped
from qwen2vl_quant.kernels.cpu_fused import FUSED_GEMV_MAX_M
from qwen2vl_quant.kernels.cpu_info import cpu_flags, cpu_model
from qwen2vl_quant.kernels.dispatch import available_paths, prepare, quantized_linear, resolve_path
from qwen2vl_quant.kernels.layout import PackedFormat
from qwen2vl_quant.testing.packed import random_packed

# (in_features K, out_features N) of the language model's Linears (config.json of
# Qwen/Qwen2-VL-2B-Instruct and -7B-Instruct: hidden, intermediate, kv heads x 128).
SHAPES = {
    "2b": {"q_o_proj": (1536, 1536), "k_v_proj": (1536, 256), "gate_up_proj": (1536, 8960), "down_proj": (8960, 1536)},
    "7b": {
        "q_o_proj": (3584, 3584),
        "k_v_proj": (3584, 512),
        "gate_up_proj": (3584, 18944),
        "down_proj": (18944, 3584),
    },
}
M_ALL = (1, 4, 16, 64, 256, 2048)
M_QUICK = (1, 16, 64, 256)
# name -> (layout, bits, group_size): Qwen's published checkpoints use group 128; the
# per-channel 8-bit variant is the one torch's int8 CPU op runs in one launch.
FORMATS = {
    "gptq4": ("gptq", 4, 128),
    "awq4": ("awq", 4, 128),
    "gptq8": ("gptq", 8, 128),
    "gptq8pc": ("gptq", 8, -1),
}
FORMATS_QUICK = ("gptq4", "awq4", "gptq8", "gptq8pc")
# Peak DRAM bandwidth by device name (vendor datasheets), for the "% of peak" column.
PEAK_GBS = {"H200": 4800.0, "H100 NVL": 3900.0, "H100 PCIe": 2000.0, "H100": 3350.0, "A100": 2039.0, "L40S": 864.0}


def peak_gbs(name: str) -> float | None:
    return next((v for k, v in PEAK_GBS.items() if k in name), None)


def time_ms(fn, device: torch.device, min_time: float) -> float:
    if device.type == "cuda":
        return triton.testing.do_bench(fn, warmup=25, rep=max(50, int(min_time * 1000)))
    from torch.utils import benchmark

    fn()
    return benchmark.Timer("fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_time).median * 1e3


def time_pair_ms(ref_fn, fn, device: torch.device, min_time: float) -> tuple[float, float]:
    """(ref_fn, fn) times in ms. On CPU the two run in alternating blocks of calls and each
    gets the median of its blocks: on a shared VM whose speed drifts by 15-35 % within
    minutes, timing one after the other moved single ratios by +-10 % (issue 17); alternating
    exposes both to the same drift. On CUDA each is timed by Triton's do_bench."""
    if device.type == "cuda":
        return time_ms(ref_fn, device, min_time), time_ms(fn, device, min_time)
    ref_fn(), fn()  # warm-up: caches, lazily built tables
    start = time.perf_counter()
    fn()
    per_block = max(1, int(0.02 / max(time.perf_counter() - start, 1e-6)))  # ~20 ms blocks
    times: tuple[list[float], list[float]] = ([], [])
    start = time.perf_counter()
    while len(times[0]) < 5 or time.perf_counter() - start < 2 * min_time:
        for i, f in enumerate((ref_fn, fn)):
            t0 = time.perf_counter()
            for _ in range(per_block):
                f()
            times[i].append((time.perf_counter() - t0) / per_block * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])


def quant_bytes(fmt: PackedFormat, k: int, n: int, group: int, m: int) -> int:
    groups = k // group
    return 4 * (k * n // fmt.pack) + 2 * groups * n + 4 * groups * (n // fmt.pack) + 2 * m * k + 2 * m * n


# The CPU features that decide which kernel wins (AVX512-BF16 dot products, AMX tiles).
KEY_CPU_FLAGS = ("avx512f", "avx512_bf16", "avx512_vnni", "avx512vbmi", "amx_tile", "amx_bf16")


def machine() -> dict:
    flags = cpu_flags()
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cpu": cpu_model(),
        "cpu_features": " ".join(f for f in KEY_CPU_FLAGS if f in flags) + "; without: "
        + (" ".join(f for f in KEY_CPU_FLAGS if f not in flags) or "-"),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if cpu_fused.extension() is not None:
        meta["cpu_kernels"] = "C++ (kernels/cpu_fused.cpp, -march=native)"
        meta["cpu_dequant_from_m"] = cpu_fused.dense_switch()  # measured on this machine
        meta["cpu_gemm"] = cpu_fused.gemm_kind()  # measured too
    else:
        meta["cpu_kernels"] = f"torch's ops only ({cpu_fused.failure})"
    if torch.cuda.is_available():
        meta["gpu"] = torch.cuda.get_device_name()
        meta["gpu_peak_gbs"] = peak_gbs(meta["gpu"])
    return meta


def bench_shape(model, proj, k, n, fmt_name, ms, device, min_time, with_reference, log, auto_only=False):
    layout, bits, group_size = FORMATS[fmt_name]
    fmt = PackedFormat(layout, bits)
    w = random_packed(layout, bits, k, n, group_size, device=device)
    group = w.group
    prepared = prepare(layout, bits, group_size, w.qweight, w.qzeros, w.scales, w.g_idx, device)
    dense = torch.randn(n, k, dtype=torch.bfloat16, device=device) / k**0.5
    peak = peak_gbs(torch.cuda.get_device_name()) if device.type == "cuda" else None
    rows = []
    for m in ms:
        x = torch.randn(m, k, dtype=torch.bfloat16, device=device)
        auto = resolve_path(prepared, m)
        paths = [p for p in available_paths(prepared) if with_reference or p != "reference"]
        if device.type == "cpu":
            paths = [p for p in paths if not p.startswith("triton")]
        if auto_only:  # what a user's model runs: the slower alternatives take most of the time at M = 2048
            paths = [auto]
        for path in paths:
            if (path == "triton_decode" and m > 16) or (path == "cpu_gemv" and m > FUSED_GEMV_MAX_M):
                continue
            t_lin, t = time_pair_ms(lambda x=x: F.linear(x, dense),
                                    lambda x=x, path=path: quantized_linear(x, prepared, path=path), device, min_time)
            lin_gbs = (2 * k * n + 2 * m * k + 2 * m * n) / t_lin / 1e6
            gbs = quant_bytes(fmt, k, n, group, m) / t / 1e6
            row = {
                "model": model, "proj": proj, "k": k, "n": n, "format": fmt_name, "group": group_size, "m": m,
                "path": path, "auto": path == auto, "ms": round(t, 4), "bf16_linear_ms": round(t_lin, 4),
                "speedup_vs_bf16": round(t_lin / t, 3), "gbs": round(gbs, 2), "bf16_linear_gbs": round(lin_gbs, 2),
                "pct_of_peak": round(100 * gbs / peak, 1) if peak else None,
            }  # fmt: skip
            rows.append(row)
            log(
                f"{model} {proj:13s} K={k:5d} N={n:5d} {fmt_name:7s} M={m:4d} {path:14s}{'*' if row['auto'] else ' '} "
                f"{t:9.3f} ms  bf16 {t_lin:9.3f} ms  x{row['speedup_vs_bf16']:6.2f}  {gbs:7.1f} GB/s"
            )
    return rows


def report_header(title: str, script: str, argv: list[str], meta: dict) -> list[str]:
    """The top of a benchmark's markdown report: its title, the command that wrote it and the
    machine (machine()), one line per entry."""
    command = f"`python benchmarks/{script} {' '.join(argv)}`".replace("  ", " ")
    return [f"# {title}", "", command, "", *(f"- {key}: {value}" for key, value in meta.items())]


def markdown(meta: dict, rows: list[dict], compiled: list[dict], args) -> str:
    out = report_header("Kernel benchmark", "bench_kernels.py", args, meta)
    out += [
        "",
        "speedup = bf16 F.linear time / path time (> 1: faster than bf16); GB/s over the bytes the call",
        "must move (packed weight + scales + zeros + x + y; bf16: weight + x + y). `*` marks the path",
        '`quantized_linear(path="auto")` takes. Random weights. On CPU each path and the BF16 linear run in',
        "alternating blocks of calls, the median block of each; on CUDA, Triton's do_bench.",
        "",
    ]
    summary = [r for r in rows if r["auto"]]
    if summary:
        out += [
            "## Auto path",
            "",
            "| model | proj | K | N | format | M | path | ms | bf16 ms | speedup | GB/s |",
            "|" + "---|" * 11,
        ]
        for r in summary:
            out.append(
                f"| {r['model']} | {r['proj']} | {r['k']} | {r['n']} | {r['format']} | {r['m']} | {r['path']} | "
                f"{r['ms']:.3f} | {r['bf16_linear_ms']:.3f} | {r['speedup_vs_bf16']:.2f} | {r['gbs']:.1f} |"
            )
        out.append("")
    peak = meta.get("gpu_peak_gbs")
    out += [
        "## Every path",
        "",
        "| model | proj | format | M | path | ms | bf16 ms | speedup | GB/s | bf16 GB/s |"
        + (" % peak |" if peak else ""),
        "|" + "---|" * (11 if peak else 10),
    ]
    for r in rows:
        line = (
            f"| {r['model']} | {r['proj']} | {r['format']} | {r['m']} | {r['path']}{'*' if r['auto'] else ''} | "
            f"{r['ms']:.3f} | "
            f"{r['bf16_linear_ms']:.3f} | {r['speedup_vs_bf16']:.2f} | {r['gbs']:.1f} | {r['bf16_linear_gbs']:.1f} |"
        )
        out.append(line + (f" {r['pct_of_peak']} |" if peak else ""))
    if compiled:
        out += ["", "## Shipped kernel configs, cross-compiled (no GPU needed)", ""]
        out += [
            "| config | format | arch | BLOCK_K | registers | spill st/ld B | stack B | shared B | limit B | ok |",
            "|" + "---|" * 10,
        ]
        for c in compiled:
            out.append(
                f"| {c['config']} | {c['format']} | sm_{c['arch']} | {c['block_k']} | {c['registers']} | "
                f"{c['spill_stores']}/{c['spill_loads']} | {c['stack_bytes']} | {c['shared_bytes']} | "
                f"{c['smem_limit']} | {c['ok']} |"
            )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2B shapes, M = 1 16 64 256, formats gptq4 awq4 gptq8 gptq8pc")
    parser.add_argument("--models", nargs="+", choices=sorted(SHAPES), default=None)
    parser.add_argument("--projs", nargs="+", default=None, help="subset of q_o_proj k_v_proj gate_up_proj down_proj")
    parser.add_argument("--m", nargs="+", type=int, default=None, help=f"rows (default {M_ALL})")
    parser.add_argument("--formats", nargs="+", choices=sorted(FORMATS), default=None)
    parser.add_argument("--min-time", type=float, default=None, help="seconds of timing per measurement")
    parser.add_argument("--with-reference", action="store_true", help="also time the (slow) reference path")
    parser.add_argument("--auto-only", action="store_true", help="time only the path chosen automatically (and BF16)")
    parser.add_argument("--no-compile", action="store_true", help="skip the sm_80/sm_90 cross-compile table")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--name", default="kernels", help="results file names: NAME.md and NAME.json")
    args = parser.parse_args(argv)

    models = args.models or (["2b"] if args.quick else ["2b", "7b"])
    ms = tuple(args.m or (M_QUICK if args.quick else M_ALL))
    formats = args.formats or list(FORMATS_QUICK if args.quick else FORMATS)
    min_time = args.min_time or (0.2 if args.quick else 0.5)
    device = torch.device(args.device)
    meta = machine()
    meta.update(device=str(device), quick=args.quick)
    print(json.dumps(meta, indent=1))
    start = time.perf_counter()
    rows: list[dict] = []
    for model in models:
        for proj, (k, n) in SHAPES[model].items():
            if args.projs and proj not in args.projs:
                continue
            for fmt_name in formats:
                rows += bench_shape(model, proj, k, n, fmt_name, ms, device, min_time, args.with_reference, print,
                                    auto_only=args.auto_only)
    compiled: list[dict] = []
    if not args.no_compile:
        fmts = tuple(dict.fromkeys(PackedFormat(*FORMATS[f][:2]) for f in formats))
        for res in check_shipped(formats=fmts, all_block_k=False):
            compiled.append(res.as_dict())
            print(
                f"{res.config:24s} {res.format:10s} sm_{res.arch}  regs {res.registers:3d}  spills "
                f"{res.spill_stores}/{res.spill_loads} B  smem {res.shared_bytes:6d} B  {'ok' if res.ok else 'FAIL'}"
            )
    meta["seconds"] = round(time.perf_counter() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(
        json.dumps({"meta": meta, "results": rows, "compile": compiled}, indent=1) + "\n"
    )
    (args.out / f"{args.name}.md").write_text(markdown(meta, rows, compiled, sys.argv[1:] if argv is None else argv))
    print(f"wrote {args.out / (args.name + '.md')} and {args.out / (args.name + '.json')} in {meta['seconds']} s")
    return 0 if all(c["ok"] for c in compiled) else 1


if __name__ == "__main__":
    sys.exit(main())
