#!/usr/bin/env python3
"""sha256 of every file of a fixed set of checkpoints: run before and after a change that
must not change what is written (issue 15's restructuring), then compare.

The set: the "small" random-weight test model, the built-in calibration set (all 60
conversations: images, videos and text), and every path the restructuring touched: GPTQ
Int4 / Int8 / asymmetric / per-channel (group -1) / not true-sequential / act-order with
static and with dynamic groups / padded for tensor parallelism; AWQ Int4 / Int8 / without
zero points; round to nearest Int4 (symmetric, asymmetric, per-channel); and a model
quantized in memory (``quantize``) written by ``save_quantized``. Every option spelled out.
The shards, config.json and the processor files are hashed; the report is not (it holds
timings).

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
    # Every option spelled out: the defaults themselves may change between the trees compared
    # (act-order became the GPTQ default after issue 15).
    plain = dict(desc_act=False)
    return {
        "gptq-int4": GPTQConfig(bits=4, group_size=128, **plain),
        "gptq-int8": GPTQConfig(bits=8, group_size=128, **plain),
        "gptq-int4-asym": GPTQConfig(bits=4, group_size=128, sym=False, **plain),
        "gptq-int4-per-channel": GPTQConfig(bits=4, group_size=-1, **plain),
        "gptq-int4-not-true-sequential": GPTQConfig(bits=4, group_size=128, true_sequential=False, **plain),
        "gptq-int4-act-order-static": GPTQConfig(bits=4, group_size=128, desc_act=True, static_groups=True),
        "gptq-int4-act-order-dynamic": GPTQConfig(bits=4, group_size=128, desc_act=True, static_groups=False),
        "gptq-int4-tp2": (GPTQConfig(bits=4, group_size=128, **plain), {"tensor_parallel": 2}),
        "awq-int4": AWQConfig(bits=4, group_size=128),
        "awq-int8": AWQConfig(bits=8, group_size=128),
        "awq-int4-no-zero-point": AWQConfig(bits=4, group_size=128, zero_point=False),
        "rtn-int4": RTNConfig(bits=4, group_size=128),
        "rtn-int4-asym": RTNConfig(bits=4, group_size=128, sym=False),
        "rtn-int4-per-channel": RTNConfig(bits=4, group_size=-1),
    }


def file_digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())
            if p.is_file() and p.name not in ("quantization_report.json", "written_by_qwen2vl_quant.json")}


def digests(work: Path) -> dict[str, dict[str, str]]:
    import torch
    from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

    from qwen2vl_quant import CalibrationConfig, GPTQConfig, quantize, quantize_checkpoint, save_quantized
    from qwen2vl_quant.api import write_demo_model

    model_dir = write_demo_model(work / "model", preset="small")
    calibration = CalibrationConfig(num_samples=None)  # all 60 built-in conversations, videos included
    result = {}
    for name, config in configs().items():
        config, options = config if isinstance(config, tuple) else (config, {})
        out = work / name
        report = quantize_checkpoint(model_dir, out, config, calibration=calibration, device="cpu",
                                     max_shard_size="2MB", show_progress=False, **options)
        result[name] = file_digests(out)
        print(f"{name}: {len(result[name])} files; calibration: {report.calibration}", flush=True)
    model = Qwen2VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.bfloat16)
    processor = AutoProcessor.from_pretrained(model_dir)
    quantize(model, None, GPTQConfig(bits=4, group_size=128, desc_act=False), processor=processor,
             calibration=calibration, device="cpu", show_progress=False)
    save_quantized(model, work / "in-memory", processor, max_shard_size="2MB")
    result["in-memory-gptq-int4"] = file_digests(work / "in-memory")
    print(f"in-memory-gptq-int4: {len(result['in-memory-gptq-int4'])} files", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the digests (JSON)")
    parser.add_argument("--compare", type=Path, help="digests of an earlier run: exit 1 unless every file is equal")
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
        print(f"{sum(len(v) for v in result.values())} files compared; "
              f"{'all identical' if not changed else 'changed: ' + ', '.join(changed)}")
        return 1 if changed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
