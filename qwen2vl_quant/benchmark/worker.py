"""One speed run in a fresh process: ``python -m qwen2vl_quant.benchmark.worker SPEC RESULT``.

SPEC is the JSON run description written by speed.run_isolated; the SpeedResult is written
to RESULT as JSON. A fresh process per run makes the peak memory (ru_maxrss, or the CUDA
allocator's peak) that run's alone, and confines an out-of-memory crash to it.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m qwen2vl_quant.benchmark.worker SPEC.json RESULT.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    import torch  # noqa: F401  (configures its loggers on import; quiet them after)

    for noisy in ("transformers", "torch", "accelerate", "gptqmodel"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from .speed import run_spec

    spec = json.loads(Path(argv[0]).read_text())
    result = run_spec(spec, isolated=True)
    Path(argv[1]).write_text(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
