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
import logging
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SETTINGS = {  # name -> AWQConfig overrides
    "exact (every token and row)": dict(search_tokens=None, search_rows=None),
    "default": {},
    "bounded, forced": dict(exact_search_macs=0),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "awq_search_budget")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from versus.heldout import run_study

    from qwen2vl_quant import AWQConfig

    cases = [(name, {"setting": name, "options": options}, AWQConfig(bits=4, **options))
             for name, options in SETTINGS.items()]
    return run_study("benchmarks/awq_search_budget.py", argv if argv is not None else sys.argv[1:], args.out,
                     args.workdir, cases, render)


def render(result: dict) -> str:
    from versus.heldout import SMALL_MODEL_SAMPLES, SMALL_VLM_SAMPLES, machine_line, small_vlm_table

    m = result["machine"]
    lines = ["# AWQ: bounded search against the exact one (issue 13)", "", f"`{result['command']}`", "",
             "Random-weight small model (hidden 256): held-out error of the final hidden states / seconds to quantize.",
             "", "| search | " + " | ".join(f"{n} samples" for n in SMALL_MODEL_SAMPLES) + " |",
             "|---|" + "---|" * len(SMALL_MODEL_SAMPLES)]
    for row in result["rows"]:
        cells = [f"{row['small_model'][n]['error']:.5f} / {row['small_model'][n]['seconds']:.1f} s"
                 for n in SMALL_MODEL_SAMPLES]
        lines.append(f"| {row['setting']} | " + " | ".join(cells) + " |")
    lines += ["", *small_vlm_table(result["rows"], SMALL_VLM_SAMPLES, [row["setting"] for row in result["rows"]],
                                   "search"),
              "", machine_line(m), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
