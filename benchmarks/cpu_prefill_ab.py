"""Prefill on CPU, interleaved in one process: BF16, our loader's quantized models and
transformers + gptqmodel on a GPTQ checkpoint, one prompt after the other, round after round.

On a shared VM single prefills move by 10-25 % between runs minutes apart (the Xeon of
2026-12-07: the same `qwen2vl-quant bench` prefill ratio went from 1.23x to 0.92x between
two runs), more than the differences to settle. Here every model is loaded once, in one
process, and each round times one prefill of each, so neighbours in time share the drift;
the table gives each round, the medians and the ratios to BF16. Batch 1, a text prompt of
--length random token ids, the language model's logits for the last position only (as
`generate` asks for), after one untimed prefill each.

    python benchmarks/cpu_prefill_ab.py MODEL_DIR GPTQ-Int4=INT4_DIR AWQ=AWQ_DIR --peer INT4_DIR
    python benchmarks/cpu_prefill_ab.py MODEL_DIR INT4_DIR --length 1024 --rounds 3 --out /tmp/ab

Writes benchmarks/results/cpu_prefill_ab.md and .json (override with --out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_kernels import machine, report_header  # noqa: E402

from qwen2vl_quant.benchmark.models import load_model, model_entry  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PEER = "transformers + gptqmodel"


def prefill_seconds(model, ids: torch.Tensor) -> float:
    with torch.inference_mode():
        start = time.perf_counter()
        model(input_ids=ids, logits_to_keep=1)
        return time.perf_counter() - start


def markdown(result: dict) -> str:
    names = list(result["median"])
    out = report_header("Prefill on CPU, interleaved in one process", "cpu_prefill_ab.py", result["argv"],
                        result["machine"])
    out += ["", f"Batch 1, a prompt of {result['length']} tokens, seconds per prefill, one of each model per round.",
            "", "| round | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for i, row in enumerate(result["rounds"], 1):
        out.append(f"| {i} | " + " | ".join(f"{row[n]:.3f}" for n in names) + " |")
    out.append("| median | " + " | ".join(f"{result['median'][n]:.3f}" for n in names) + " |")
    out += ["", "Time over BF16's (below 1: faster), ratio of the medians and the range of the rounds' ratios:", ""]
    out += [f"- {n}: {r['median']:.3f}x (rounds {r['low']:.2f}-{r['high']:.2f}x)" for n, r in result["ratios"].items()]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", help="the BF16 model")
    parser.add_argument("quant_dirs", nargs="+", metavar="QUANT_DIR", help="our checkpoints, as DIR or LABEL=DIR")
    parser.add_argument("--peer", metavar="GPTQ_DIR", help="also load this GPTQ checkpoint through transformers + gptqmodel")
    parser.add_argument("--length", type=int, default=256, help="prompt tokens")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    device = torch.device("cpu")
    models = {"BF16": load_model(model_entry(args.model_dir, "BF16"), device)[0]}
    for spec in args.quant_dirs:
        label, _, path = spec.rpartition("=")
        entry = model_entry(path, label or None)
        models[entry.label] = load_model(entry, device)[0]
    if args.peer:
        models[PEER] = load_model(model_entry(args.peer, None), device, loader="transformers")[0]
    vocab = models["BF16"].config.get_text_config().vocab_size
    ids = torch.randint(1000, vocab - 1000, (1, args.length), generator=torch.Generator().manual_seed(0))
    for model in models.values():  # untimed: lazily built tables, the dense switch's probe
        prefill_seconds(model, ids)
    result: dict = {"machine": machine(), "argv": sys.argv[1:] if argv is None else argv, "length": args.length,
                    "rounds": []}
    for i in range(args.rounds):
        row = {name: prefill_seconds(model, ids) for name, model in models.items()}
        result["rounds"].append(row)
        print(f"round {i + 1}: " + ", ".join(f"{k} {v:.3f} s" for k, v in row.items()), flush=True)
    result["median"] = {name: statistics.median(r[name] for r in result["rounds"]) for name in models}
    result["ratios"] = {}
    for name in list(models)[1:]:
        per_round = [r[name] / r["BF16"] for r in result["rounds"]]
        result["ratios"][name] = {"median": result["median"][name] / result["median"]["BF16"],
                                  "low": min(per_round), "high": max(per_round)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cpu_prefill_ab.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (args.out / "cpu_prefill_ab.md").write_text(markdown(result))
    print("\n".join(f"{n} / BF16: {r['median']:.3f}x (rounds {r['low']:.2f}-{r['high']:.2f}x)"
                    for n, r in result["ratios"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
