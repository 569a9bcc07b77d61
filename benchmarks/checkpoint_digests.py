#!/usr/bin/env python3
"""sha256 of every shard of a fixed set of checkpoints: run before and after a change that
must not change what is written (issue 15's restructuring), then compare.

The set: the "small" random-weight test model, the built-in calibration set (16
conversations), and GPTQ Int4 / Int8 / asymmetric / act-order with static and with dynamic
groups, AWQ Int4 / Int8 and round to nearest Int4, every option spelled out.

    python benchmarks/checkpoint_digests.py --out before.json      # on the old tree
    python benchmarks/checkpoint_digests.py --out after.json --compare before.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import tempfile
from pathlib import Path


def configs() -> dict:
    from qwen2vl_quant.config import GPTQConfig, RTNConfig

    try:
        from qwen2vl_quant.config import AWQConfig
    except ImportError:  # the tree before issue 15 kept it in its own module
        from qwen2vl_quant.awq_config import AWQConfig
    return {
        "gptq-int4": GPTQConfig(bits=4, group_size=128),
        "gptq-int8": GPTQConfig(bits=8, group_size=128),
        "gptq-int4-asym": GPTQConfig(bits=4, group_size=128, sym=False),
        "gptq-int4-act-order-static": GPTQConfig(bits=4, group_size=128, desc_act=True, static_groups=True),
        "gptq-int4-act-order-dynamic": GPTQConfig(bits=4, group_size=128, desc_act=True, static_groups=False),
        "awq-int4": AWQConfig(bits=4, group_size=128),
        "awq-int8": AWQConfig(bits=8, group_size=128),
        "rtn-int4": RTNConfig(bits=4, group_size=128),
    }


def digests(work: Path) -> dict[str, dict[str, str]]:
    from qwen2vl_quant import CalibrationConfig, quantize_checkpoint
    from qwen2vl_quant.api import write_demo_model

    model = write_demo_model(work / "model", preset="small")
    result = {}
    for name, config in configs().items():
        out = work / name
        quantize_checkpoint(model, out, config, calibration=CalibrationConfig(num_samples=16), device="cpu",
                            max_shard_size="2MB", show_progress=False)
        result[name] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.safetensors"))}
        print(f"{name}: {len(result[name])} shards", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the digests (JSON)")
    parser.add_argument("--compare", type=Path, help="digests of an earlier run: exit 1 unless every shard is equal")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="digests-") as tmp:
        result = digests(Path(tmp))
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    if args.compare:
        before = json.loads(args.compare.read_text())
        changed = sorted(f"{name}/{shard}" for name in before.keys() | result.keys()
                         for shard in before.get(name, {}).keys() | result.get(name, {}).keys()
                         if before.get(name, {}).get(shard) != result.get(name, {}).get(shard))
        print(f"{sum(len(v) for v in result.values())} shards compared; "
              f"{'all identical' if not changed else 'changed: ' + ', '.join(changed)}")
        return 1 if changed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
