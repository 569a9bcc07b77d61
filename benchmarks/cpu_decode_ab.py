"""Decode speed, ours against the peer, interleaved: BF16, our loader and transformers +
gptqmodel on the same quantized checkpoint, each run in a fresh process, round after round.

On a shared VM the speed drifts by 15-35 % between runs minutes apart (issue 17's notes), so
two `qwen2vl-quant bench` runs one after the other cannot settle a 10 % difference; here
every round measures all three within a minute, and the table gives each round and the
medians. Batch 1, a one-token prompt, exactly --new-tokens greedy tokens after a warm-up,
best of two generations per process.

    python benchmarks/cpu_decode_ab.py MODEL_DIR QUANT_DIR            # 3 rounds: ~4 min on the 2B shapes
    python benchmarks/cpu_decode_ab.py MODEL_DIR QUANT_DIR --rounds 5 --out /tmp/ab

Writes benchmarks/results/cpu_decode_ab.md and .json (override with --out).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_kernels import machine, report_header  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

# One configuration in a fresh process: load, warm up, time, print "TOKENS_PER_S <value>".
CHILD = r"""
import sys, time, torch
from qwen2vl_quant.benchmark.models import load_model, model_entry
path, label, loader, new_tokens = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
model, _ = load_model(model_entry(path, label), torch.device("cpu"), loader=loader)
ids = torch.tensor([[model.config.get_text_config().bos_token_id or 0]])
with torch.inference_mode():
    model.generate(input_ids=ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    best = 0.0
    for _ in range(2):
        start = time.perf_counter()
        model.generate(input_ids=ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        best = max(best, new_tokens / (time.perf_counter() - start))
print("TOKENS_PER_S", best)
"""


def run_one(path: str, label: str, loader: str, new_tokens: int) -> float | str:
    env = dict(os.environ, GPTQMODEL_CPU_WORKERS=os.environ.get("GPTQMODEL_CPU_WORKERS", "2"))
    run = subprocess.run([sys.executable, "-c", CHILD, path, label, loader, str(new_tokens)],
                         capture_output=True, text=True, env=env)
    for line in run.stdout.splitlines():
        if line.startswith("TOKENS_PER_S"):
            return float(line.split()[1])
    return (run.stderr.strip().splitlines() or [f"exit {run.returncode}"])[-1][:300]


def markdown(result: dict) -> str:
    configs = list(result["rounds"][0])
    out = report_header("Decode on CPU: ours against transformers + gptqmodel, interleaved", "cpu_decode_ab.py",
                        result["argv"], result["machine"])
    out += ["", f"Batch 1, one-token prompt, {result['new_tokens']} new tokens, tokens/s (best of two per process).",
            "", "| round | " + " | ".join(configs) + " |", "|---" * (len(configs) + 1) + "|"]
    for i, row in enumerate(result["rounds"], 1):
        out.append(f"| {i} | " + " | ".join(f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c])
                                          for c in configs) + " |")
    med = result["median"]
    out.append("| median | " + " | ".join(f"{med[c]:.2f}" if med[c] else "-" for c in configs) + " |")
    out += ["", *(f"- {line}" for line in result["ratios"])]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", help="the BF16 model")
    parser.add_argument("quant_dir", help="a GPTQ checkpoint written by qwen2vl-quant")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    configs = {"BF16": (args.model_dir, "BF16", "ours"),
               "ours": (args.quant_dir, "GPTQ-Int4", "ours"),
               "transformers + gptqmodel": (args.quant_dir, "GPTQ-Int4", "transformers")}
    result: dict = {"machine": machine(), "argv": sys.argv[1:] if argv is None else argv,
                    "new_tokens": args.new_tokens, "rounds": []}
    for i in range(args.rounds):
        row = {name: run_one(*config, args.new_tokens) for name, config in configs.items()}
        result["rounds"].append(row)
        print(f"round {i + 1}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                          for k, v in row.items()), flush=True)
    med = {name: statistics.median(v) if (v := [r[name] for r in result["rounds"] if isinstance(r[name], float)])
           else None for name in configs}
    result["median"] = med
    ours, peer, bf16 = med["ours"], med["transformers + gptqmodel"], med["BF16"]
    result["ratios"] = []
    if ours and bf16:
        result["ratios"].append(f"ours / BF16: {ours / bf16:.2f}x")
    if peer and bf16:
        result["ratios"].append(f"transformers + gptqmodel / BF16: {peer / bf16:.2f}x")
    if ours and peer:
        result["ratios"].append(f"ours / transformers + gptqmodel: {ours / peer:.2f}x")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cpu_decode_ab.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (args.out / "cpu_decode_ab.md").write_text(markdown(result))
    print("\n".join(result["ratios"]))
    failed = [name for name, v in med.items() if v is None]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
