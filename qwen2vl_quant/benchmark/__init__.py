"""The benchmark harness: the Qwen2-VL README's speed and quality tables for any model.

    from qwen2vl_quant.benchmark import QualityConfig, SpeedConfig, run_benchmark

    report = run_benchmark("Qwen2-VL-7B-Instruct", ["GPTQ-Int8=out/int8", "out/int4"],
                           speed=SpeedConfig(), quality=QualityConfig(vqa="docvqa_val.jsonl"))
    print(report.speed_markdown(), report.quality_markdown())
    report.write("results/")        # speed.md, speed.json, quality.md, quality.json

    run.py       run_benchmark: the runs, one progress bar  models.py   labels and loading
    machine.py   machine, device, versions, git commit
    speed.py     tokens/s, time to first token, memory     worker.py   one speed run per process
    quality.py   KL / top-1 / answer PPL vs BF16, VQA EM and ANLS
    paths.py     which kernel path the quantized layers ran
    report.py    markdown and JSON                         cli.py      ``qwen2vl-quant bench``

Public names are imported lazily (PEP 562), so ``--help`` does not import torch.
"""

from importlib import import_module

_EXPORTS = {
    "run_benchmark": "run",
    "SpeedConfig": "speed",
    "QualityConfig": "quality",
    "BenchReport": "report",
    "SpeedResult": "speed",
    "QualityResult": "quality",
    "EvalDataError": "quality",
    "machine_info": "machine",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
