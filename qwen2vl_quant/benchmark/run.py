"""``run_benchmark``: the speed and quality tables of a BF16 model and its quantized outputs."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from ..errors import ConfigError
from .machine import machine_info
from ..pipeline.runs import resolve_device
from .models import LOADERS, ModelEntry, resolve_models
from .quality import QualityConfig, run_quality
from .report import BenchReport
from .speed import Runtime, SpeedConfig, run_specs, run_speed

def run_benchmark(
    model_dir: str | Path,
    quantized: Sequence[Any] = (),
    *,
    speed: SpeedConfig | None = None,
    quality: QualityConfig | None = None,
    device: str | None = None,
    loader: str = "ours",
    attn_implementation: str | None = "sdpa",
    threads: int | None = None,
    multi_gpu: bool = False,
    name: str | None = None,
    show_progress: bool = True,
) -> BenchReport:
    """Measure ``model_dir`` (BF16) and each quantized directory; return the report.

    quantized: directories written by this tool, each a path, "LABEL=PATH" or (label, path);
        labels default to BF16 / GPTQ-Int8 / GPTQ-Int4 / AWQ / RTN-Int4 from their configs.
    speed: the speed table's settings (None: no speed table); quality: the quality table's
        (None: none). device: "cpu", "cuda", "cuda:N" (default: cuda if present).
    threads: torch CPU threads for every run (None: torch's default); on a CPU shared with
        other jobs, 1 thread can be many times faster than 2 (OpenMP threads wait on each other).
    multi_gpu: spread models loaded by transformers (the BF16 one; all with loader
        "transformers") over every visible GPU, as a 72B BF16 model needs; "GPU Num" counts them.
    A run that fails (out of memory at one input length, say) is reported in its row and
    the others go on; user mistakes (missing directories, bad options) raise QuantError.
    """
    if speed is None and quality is None:
        raise ConfigError("nothing to measure: give a speed and/or a quality config")
    if loader not in LOADERS:
        raise ConfigError(f"loader must be one of {LOADERS}, got {loader!r}")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be at least 1, got {threads}")
    entries = resolve_models(model_dir, list(quantized))
    dev = resolve_device(device)
    runtime = Runtime(device=str(dev), loader=loader, attn_implementation=attn_implementation, threads=threads,
                      multi_gpu=multi_gpu)
    saved_threads = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        return _run(model_dir, entries, dev, runtime, speed, quality, name, show_progress)
    finally:
        torch.set_num_threads(saved_threads)


def _run(model_dir: str | Path, entries: list[ModelEntry], dev: torch.device, runtime: Runtime, speed: SpeedConfig | None,
         quality: QualityConfig | None, name: str | None, show_progress: bool) -> BenchReport:
    speed = speed.for_device(dev) if speed is not None else None
    report = BenchReport(name=name or Path(model_dir).resolve().name, machine=machine_info(dev),
                         runtime=dataclasses.asdict(runtime), models=entries,
                         speed_config=dataclasses.asdict(speed) if speed else None,
                         quality_config=dataclasses.asdict(quality) if quality else None)
    total = (len(run_specs(entries, speed)) if speed else 0) + (len(entries) if quality else 0)
    started = time.perf_counter()
    with _Progress(total, show_progress) as advance:
        if quality is not None:
            report.quality = run_quality(entries, quality, runtime, advance)
        if speed is not None:
            report.speed = run_speed(entries, speed, runtime, advance)
    report.seconds = time.perf_counter() - started
    report.machine["load_average_end"] = machine_info(dev).get("load_average")
    failures = report.failures()
    if failures:
        report.notes.append(f"{len(failures)} run(s) failed; their rows show the error.")
    return report


class _Progress:
    """One bar over all runs; ``advance(what)`` marks the previous run done and names the next."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = tqdm(total=total, unit="run", disable=not enabled, dynamic_ncols=True)
        self.started = False

    def __enter__(self):
        return self.advance

    def advance(self, what: str) -> None:
        if self.started:
            self.bar.update(1)
        self.started = True
        self.bar.set_description(what)

    def __exit__(self, *exc: Any) -> None:
        if self.started and exc[0] is None:
            self.bar.update(1)
            self.bar.set_description("bench done")
        self.bar.close()
