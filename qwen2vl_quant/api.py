"""The public verbs: ``quantize`` a model in memory, ``quantize_checkpoint`` a directory
(streamed layer by layer, resumable), ``save_quantized``, ``write_demo_model``; and
``load_quantized`` (loading.py).

This module is the thin public face: it fills in defaults and checks arguments; the runs
themselves are pipeline/runs.py. Library calls change nothing process-wide; the CLI pins
glibc's malloc thresholds for long runs (allocator.py), which a library user may do too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import DEFAULT_MAX_SHARD_SIZE, CalibrationConfig, GPTQConfig, QuantConfig
from .pipeline import runs
from .pipeline.source import spec_of_model
from .report import QuantReport

resolve_device = runs.resolve_device


def quantize(
    model: nn.Module,
    calib_data: Any = None,
    config: QuantConfig | None = None,
    *,
    processor: Any = None,
    calibration: CalibrationConfig | None = None,
    device: str | torch.device | None = None,
    show_progress: bool = True,
) -> QuantReport:
    """Quantize the language model of a Qwen2-VL, Qwen2.5-VL or Qwen3-VL ``model`` in place; return the report.

    calib_data: conversations in the Qwen-VL message format, a .jsonl/.json file path,
    ready processor outputs (dicts of tensors), or None for the built-in offline set.
    The vision tower, merger, embeddings, norms and lm_head are left untouched.
    """
    return runs.quantize_in_place(model, calib_data, config or GPTQConfig(), processor=processor,
                                  calibration=calibration or CalibrationConfig(), device=resolve_device(device),
                                  show_progress=show_progress)


def quantize_checkpoint(
    model_dir: str | Path,
    out_dir: str | Path,
    config: QuantConfig | None = None,
    *,
    calib_data: Any = None,
    calibration: CalibrationConfig | None = None,
    device: str | torch.device | None = None,
    activations_device: str | torch.device | None = None,
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE,
    overwrite: bool = False,
    resume: bool = False,
    tensor_parallel: int | None = None,
    show_progress: bool = True,
) -> QuantReport:
    """Quantize a Qwen2-VL / Qwen2.5-VL / Qwen3-VL checkpoint directory into ``out_dir`` without ever holding the
    whole model: layers are read from the shards one at a time and written as they finish.

    A killed run restarted with ``resume=True`` goes on from the last finished layer and
    writes the same bytes. Nothing appears at ``out_dir`` until the checkpoint is complete;
    ``overwrite`` replaces only an earlier output of ours (pipeline/output_dir.py).
    tensor_parallel: pad the MLP intermediate size so that vLLM can split the model over
    this many GPUs (and any divisor of it) at this group size; outputs are unchanged.
    """
    compute = resolve_device(device)
    return runs.quantize_directory(
        Path(model_dir), Path(out_dir), config or GPTQConfig(), calib_data=calib_data,
        calibration=calibration or CalibrationConfig(), device=compute,
        store=resolve_device(activations_device) if activations_device else compute,
        max_shard_size=max_shard_size, overwrite=overwrite, resume=resume, tensor_parallel=tensor_parallel,
        show_progress=show_progress)


def save_quantized(
    model: nn.Module,
    out_dir: str | Path,
    processor: Any = None,
    *,
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE,
    overwrite: bool = False,
) -> Path:
    """Write a model quantized by ``quantize`` as a sharded checkpoint (atomically)."""
    return runs.save_model(model, Path(out_dir), processor, spec=spec_of_model(model), max_shard_size=max_shard_size,
                           overwrite=overwrite)


def write_demo_model(out_dir: str | Path, *, family: str = "qwen2_vl", preset: str = "small", seed: int = 0,
                     overwrite: bool = False) -> Path:
    """Write a random-weight model of ``family`` (qwen2_vl, qwen2_5_vl, qwen3_vl), built
    offline, to ``out_dir``, atomically."""
    return runs.write_demo(Path(out_dir), family=family, preset=preset, seed=seed, overwrite=overwrite)
