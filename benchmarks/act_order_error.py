#!/usr/bin/env python3
"""Does static-group act-order lower GPTQ's error? (issue 14)

GPTQ with act-order (``desc_act``) solves the input channels in order of decreasing Hessian
diagonal; with static groups the group grids are fitted first in natural order, so the
checkpoint keeps a trivial g_idx and vLLM serves it. If it lowers the error it should be the
default. This script quantizes the same models both ways, GPTQ Int4 at group 64 and 128:

- the random-weight "small" test model (hidden 256, 4 layers, planted outlier channels),
  calibrated on 16 and 128 image conversations: relative error of the final hidden states
  on 8 held-out image conversations, float32;
- the committed small trained VLM, calibrated on 20, 26 and 32 of its calibration
  conversations: KL to BF16 and exact-match accuracy on its 200 held-out questions.

    python benchmarks/act_order_error.py          # about 10 minutes on 2 cores
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

SETTINGS = {  # name -> GPTQConfig overrides
    "no act-order": dict(desc_act=False),
    "act-order, static groups": dict(desc_act=True, static_groups=True),
}
GROUPS = (64, 128)
SMALL_MODEL_SAMPLES = (16, 128)
SMALL_VLM_SAMPLES = (20, 26, 32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "act_order_error")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from versus.data import make_calibration, make_held_out
    from versus.heldout import small_model_error, small_vlm_quality
    from versus.measure import machine_info

    from qwen2vl_quant import GPTQConfig
    from qwen2vl_quant.api import write_demo_model

    machine = machine_info()
    rows = []
    with tempfile.TemporaryDirectory(prefix="act-order-") as tmp:
        work = args.workdir or Path(tmp)
        model_dir = work / "small"
        if not (model_dir / "config.json").is_file():
            write_demo_model(model_dir, preset="small")
        calib = make_calibration(work, max(SMALL_MODEL_SAMPLES))
        held_out = make_held_out(work)
        for group in GROUPS:
            for name, options in SETTINGS.items():
                config = GPTQConfig(bits=4, group_size=group, **options)
                row = {"group_size": group, "setting": name, "small_model": {}, "small_vlm": {}}
                for n in SMALL_MODEL_SAMPLES:
                    error, seconds = small_model_error(model_dir, calib, held_out, n, config)
                    row["small_model"][n] = {"error": error, "seconds": seconds}
                    print(f"g{group} {name}: small model, {n} samples: error {error:.5f}", flush=True)
                for n in SMALL_VLM_SAMPLES:
                    row["small_vlm"][n] = small_vlm_quality(work, n, config)
                    print(f"g{group} {name}: small VLM, {n} samples: {row['small_vlm'][n]}", flush=True)
                rows.append(row)
    result = {"command": " ".join(["python", "benchmarks/act_order_error.py", *(argv or sys.argv[1:])]),
              "machine": machine, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=1) + "\n")
    Path(f"{args.out}.md").write_text(render(result))
    print(render(result))
    return 0


def render(result: dict) -> str:
    m = result["machine"]
    lines = ["# GPTQ Int4: static-group act-order against no act-order (issue 14)", "", f"`{result['command']}`", "",
             "Random-weight small model (hidden 256, outlier channels): held-out relative error of the final "
             "hidden states.", "",
             "| group | setting | " + " | ".join(f"{n} samples" for n in SMALL_MODEL_SAMPLES) + " |",
             "|---|---|" + "---|" * len(SMALL_MODEL_SAMPLES)]
    for row in result["rows"]:
        cells = [f"{row['small_model'][n]['error']:.5f}"
                 for n in SMALL_MODEL_SAMPLES]
        lines.append(f"| {row['group_size']} | {row['setting']} | " + " | ".join(cells) + " |")
    lines += ["", "Small trained VLM: KL to BF16 / held-out accuracy, per calibration set, and their mean.", "",
              "| group | setting | " + " | ".join(f"{n} conversations" for n in SMALL_VLM_SAMPLES) + " | mean |",
              "|---|---|" + "---|" * (len(SMALL_VLM_SAMPLES) + 1)]
    for row in result["rows"]:
        runs = [row["small_vlm"][n] for n in SMALL_VLM_SAMPLES]
        cells = [f"{r['kl']:.3g} / {r['accuracy']:.1%}" for r in runs]
        cells.append(f"{statistics.mean(r['kl'] for r in runs):.3g} / "
                     f"{statistics.mean(r['accuracy'] for r in runs):.2%}")
        lines.append(f"| {row['group_size']} | {row['setting']} | " + " | ".join(cells) + " |")
    lines += ["", f"Machine: {m['cpu']}, {m['cpu_cores']} cores; {m['date']}; git {m['git_commit']} "
              f"({m['git_dirty_files']} files modified).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
