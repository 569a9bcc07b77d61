"""One speed run in a fresh process: ``python -m qwen2vl_quant.benchmark.worker SPEC RESULT``.

SPEC is the JSON run description written by speed.run_isolated; the SpeedResult is written
to RESULT as JSON. A fresh process per run makes the peak memory (ru_maxrss, or the CUDA
allocator's peak) that run's alone, and confines an out-of-memory crash to it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qwen2vl_quant.benchmark.worker")
    parser.add_argument("spec", type=Path, help="SPEC.json, written by speed.run_isolated")
    parser.add_argument("result", type=Path, help="RESULT.json, the SpeedResult")
    args = parser.parse_args(argv)  # a usage error exits 2
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    import torch  # noqa: F401  (configures its loggers on import; quiet them after)

    for noisy in ("transformers", "torch", "accelerate", "gptqmodel"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from .speed import run_spec

    spec = json.loads(args.spec.read_text())
    result = run_spec(spec, isolated=True)
    args.result.write_text(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
