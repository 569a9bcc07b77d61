#!/usr/bin/env python3
"""Does AWQ's bounded search cost quality? (issue 13)

AWQ scores each of its 40 scale candidates on a bounded sample (``AWQConfig.search_tokens``
tokens, ``search_rows`` output rows where the spec allows; every token when that is cheap,
``exact_search_macs``) instead of every calibration token and row. This script quantizes the
same models with the exact search (what the code did before issue 13), the default, and the
bounded search forced on (``exact_search_macs=0``), and reports quantization time and
held-out quality for each:

- the random-weight "small" test model (hidden 256, 4 layers, planted outlier channels),
  calibrated on 16 and 128 image conversations: relative error of the final hidden states
  on 8 held-out image conversations (none shared with the calibration set), float32, as
  benchmarks/vs_gptqmodel.py measures it;
- the committed small trained VLM (benchmarks/models/small-vlm), calibrated on 20, 26 and 32
  of its calibration conversations: KL to BF16 and exact-match accuracy on its 200 held-out
  questions, as the CI benchmark measures them. Several calibration sets, because one set's
  figure moves by more than the search setting moves it.

    python benchmarks/awq_search_budget.py          # about 15 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SETTINGS = {  # name -> AWQConfig overrides
    "exact (every token and row)": dict(search_tokens=None, search_rows=None),
    "default": {},
    "bounded, forced": dict(exact_search_macs=0),
}
SMALL_MODEL_SAMPLES = (16, 128)
SMALL_VLM_SAMPLES = (20, 26, 32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "awq_search_budget")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from versus.data import make_calibration, make_held_out
    from versus.heldout import small_model_error, small_vlm_quality
    from versus.measure import machine_info

    from qwen2vl_quant import AWQConfig
    from qwen2vl_quant.api import write_demo_model

    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="awq-budget-") as tmp:
        work = args.workdir or Path(tmp)
        model_dir = work / "small"
        if not (model_dir / "config.json").is_file():
            write_demo_model(model_dir, preset="small")
        calib = make_calibration(work, max(SMALL_MODEL_SAMPLES))
        held_out = make_held_out(work)
        rows = []
        for name, options in SETTINGS.items():
            row = {"setting": name, "options": options, "small_model": {}, "small_vlm": {}}
            for n in SMALL_MODEL_SAMPLES:
                error, seconds = small_model_error(model_dir, calib, held_out, n, AWQConfig(bits=4, **options))
                row["small_model"][n] = {"error": error, "seconds": seconds}
                print(f"{name}: small model, {n} samples: error {error:.5f}, {seconds:.1f} s", flush=True)
            for n in SMALL_VLM_SAMPLES:
                row["small_vlm"][n] = small_vlm_quality(work, n, AWQConfig(bits=4, **options))
                print(f"{name}: small VLM, {n} samples: {row['small_vlm'][n]}", flush=True)
            rows.append(row)
    result = {"command": " ".join(["python", "benchmarks/awq_search_budget.py", *(argv or sys.argv[1:])]),
              "machine": machine, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=1) + "\n")
    Path(f"{args.out}.md").write_text(render(result))
    print(render(result))
    return 0


def render(result: dict) -> str:
    m = result["machine"]
    lines = ["# AWQ: bounded search against the exact one (issue 13)", "", f"`{result['command']}`", "",
             "Random-weight small model (hidden 256): held-out error of the final hidden states / seconds to quantize.",
             "", "| search | " + " | ".join(f"{n} samples" for n in SMALL_MODEL_SAMPLES) + " |",
             "|---|" + "---|" * len(SMALL_MODEL_SAMPLES)]
    for row in result["rows"]:
        cells = [f"{row['small_model'][n]['error']:.5f} / {row['small_model'][n]['seconds']:.1f} s"
                 for n in SMALL_MODEL_SAMPLES]
        lines.append(f"| {row['setting']} | " + " | ".join(cells) + " |")
    lines += ["", "Small trained VLM: KL to BF16 / held-out accuracy, per calibration set, and their mean.", "",
              "| search | " + " | ".join(f"{n} conversations" for n in SMALL_VLM_SAMPLES) + " | mean |",
              "|---|" + "---|" * (len(SMALL_VLM_SAMPLES) + 1)]
    for row in result["rows"]:
        runs = [row["small_vlm"][n] for n in SMALL_VLM_SAMPLES]
        cells = [f"{r['kl']:.3g} / {r['accuracy']:.1%}" for r in runs]
        cells.append(f"{statistics.mean(r['kl'] for r in runs):.3g} / "
                     f"{statistics.mean(r['accuracy'] for r in runs):.2%}")
        lines.append(f"| {row['setting']} | " + " | ".join(cells) + " |")
    lines += ["", f"Machine: {m['cpu']}, {m['cpu_cores']} cores; {m['date']}; git {m['git_commit']} "
              f"({m['git_dirty_files']} files modified).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
