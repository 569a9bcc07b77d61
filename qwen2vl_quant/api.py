"""The public verbs: ``quantize`` a model in memory, ``quantize_checkpoint`` a directory
(streamed layer by layer, resumable), ``save_quantized`` / ``load_quantized``.

Both quantize entry points run the same pipeline (pipeline/layerwise.py); they differ only
in where layers come from (memory or memory-mapped shards) and where they go.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .allocator import return_freed_memory_to_os
from .arch import QWEN2_VL, key_for_module_name, layer_index_of, module_name_for_key
from .calibration.batches import CalibrationSample, build_samples
from .awq_config import AWQConfig
from .config import CalibrationConfig, GPTQConfig, RTNConfig
from .errors import ConfigError
from .formats import awq as awq_format
from .formats import gptq as gptq_format
from .pipeline.safetensors_io import StoredTensor, read_header
from .pipeline.awq_layer import quantize_layer_awq
from .pipeline.gptq_layer import quantize_layer_gptq, quantize_layer_rtn
from .pipeline.layerwise import LayerStep, capture_inputs, run_layers
from .pipeline.padding import padded_intermediate_size
from .pipeline.source import DirectorySource, ModelSource, load_processor
from .pipeline.output_dir import (
    OutputLock,
    check_output_dir,
    check_partial,
    fresh_staging,
    publish,
    staging_path,
    write_json,
    write_manifest,
)
from .pipeline.staging import Staging
from .pipeline.writer import parse_size, write_shards, write_shards_from_stored
from .report import LinearReport, QuantReport

logger = logging.getLogger(__name__)

QuantConfig = GPTQConfig | RTNConfig | AWQConfig
# Files of a model directory that describe the processor, tokenizer and generation defaults.
PROCESSOR_FILE_SUFFIXES = (".json", ".jinja", ".txt", ".model", ".tiktoken")
NOT_COPIED = {"config.json", "model.safetensors.index.json"}


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
    """Quantize the language model of a Qwen2-VL ``model`` in place; return the report.

    calib_data: conversations in the Qwen2-VL message format, a .jsonl/.json file path,
    ready processor outputs (dicts of tensors), or None for the built-in offline set.
    The vision tower, merger, embeddings, norms and lm_head are left untouched.
    """
    config = config or GPTQConfig()
    return_freed_memory_to_os()
    calibration = calibration or CalibrationConfig()
    source = ModelSource(model)
    _check_compatible(source.text_config, config)
    compute = resolve_device(device)
    samples, summary = _samples(calib_data, processor, calibration)
    started = time.perf_counter()
    inputs = capture_inputs(source, samples, QWEN2_VL, compute, compute, show_progress)
    linears = run_layers(source, inputs, _step(config), QWEN2_VL, _NoSink(), device=compute,
                         store_device=compute, show_progress=show_progress)
    model.config.quantization_config = _quantization_config(config)
    return _report(config, summary.describe(), linears, started)


def quantize_checkpoint(
    model_dir: str | Path,
    out_dir: str | Path,
    config: QuantConfig | None = None,
    *,
    calib_data: Any = None,
    calibration: CalibrationConfig | None = None,
    device: str | torch.device | None = None,
    activations_device: str | torch.device | None = None,
    max_shard_size: str | int = "4GB",
    overwrite: bool = False,
    resume: bool = False,
    tensor_parallel: int | None = None,
    show_progress: bool = True,
) -> QuantReport:
    """Quantize a Qwen2-VL checkpoint directory into ``out_dir`` without ever holding the
    whole model: layers are read from the shards one at a time and written as they finish.

    A killed run restarted with ``resume=True`` goes on from the last finished layer and
    writes the same bytes. Nothing appears at ``out_dir`` until the checkpoint is complete.
    tensor_parallel: pad the MLP intermediate size so that vLLM can split the model over
    this many GPUs (and any divisor of it) at this group size; outputs are unchanged.
    """
    config = config or GPTQConfig()
    return_freed_memory_to_os()
    calibration = calibration or CalibrationConfig()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    max_shard_bytes = parse_size(max_shard_size)
    with OutputLock(out_dir):
        check_output_dir(out_dir, overwrite, inputs=[model_dir])
        check_partial(out_dir, resume)
        source = DirectorySource(model_dir)
        try:
            report, staging = _quantize_directory(source, out_dir, config, calib_data, calibration, device,
                                                  activations_device, resume, tensor_parallel, show_progress)
            logger.info("writing the checkpoint shards to %s", staging.path)
            _write_output(staging, source, config, max_shard_bytes, report)
        finally:
            source.close()
        write_manifest(staging.path)
        publish(staging.path, out_dir)
    report.output_dir = str(out_dir)
    return report


def _quantize_directory(source: DirectorySource, out_dir: Path, config: QuantConfig, calib_data: Any,
                        calibration: CalibrationConfig, device, activations_device, resume: bool,
                        tensor_parallel: int | None, show_progress: bool) -> tuple[QuantReport, Staging]:
    """Capture (or reload) the calibration inputs, then quantize the layers into the staging folder."""
    if tensor_parallel:
        size = padded_intermediate_size(source.text_config.intermediate_size, tensor_parallel, config.group_size)
        source.padded_intermediate_size = size
        logger.info("padding the MLP intermediate size %d -> %d for %d-way tensor parallelism",
                    source.text_config.intermediate_size, size, tensor_parallel)
    _check_compatible(source.text_config, config, source.padded_intermediate_size)
    processor = load_processor(source.model_dir)
    compute = resolve_device(device)
    store = resolve_device(activations_device) if activations_device else compute
    samples, summary = _samples(calib_data, processor, calibration)
    staging = Staging(staging_path(out_dir),
                      _fingerprint(source.model_dir, config, calibration, samples, source.padded_intermediate_size),
                      source.num_layers)
    finished = staging.start(resume)
    started = time.perf_counter()
    if staging.captured:
        logger.info("resuming: %d of %d layers finished, calibration inputs reloaded", finished, source.num_layers)
        inputs = staging.load_inputs()
        inputs = [dataclasses.replace(s, hidden=s.hidden.to(store)) for s in inputs]
    else:
        inputs = capture_inputs(source, samples, QWEN2_VL, compute, store, show_progress)
        staging.save_captured(inputs)
    sink = _StagingSink(staging, source.reader.legacy_keys)
    run_layers(source, inputs, _step(config), QWEN2_VL, sink, device=compute, store_device=store,
               start_layer=finished, show_progress=show_progress)
    linears = [LinearReport(**r) for r in staging.reports()]
    return _report(config, summary.describe(), linears, started), staging


def save_quantized(
    model: nn.Module,
    out_dir: str | Path,
    processor: Any = None,
    *,
    max_shard_size: str | int = "4GB",
    overwrite: bool = False,
) -> Path:
    """Write a model quantized by ``quantize`` as a sharded checkpoint (atomically)."""
    out_dir = Path(out_dir)
    qconfig = getattr(model.config, "quantization_config", None)
    if not isinstance(qconfig, dict) or "quant_method" not in qconfig:
        raise ConfigError("this model has not been quantized by qwen2vl_quant.quantize")
    max_shard_bytes = parse_size(max_shard_size)
    with OutputLock(out_dir):
        check_output_dir(out_dir, overwrite)
        staging = fresh_staging(out_dir)
        state = model.state_dict()
        if model.config.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        tensors = {key_for_module_name(name, legacy=True): t.detach().cpu() for name, t in state.items()}
        write_shards(staging, tensors, max_shard_bytes)
        model.config.save_pretrained(staging)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(staging)
        if processor is not None:
            processor.save_pretrained(staging)
        write_manifest(staging)
        publish(staging, out_dir)
    return out_dir


def write_demo_model(out_dir: str | Path, *, preset: str = "small", seed: int = 0, overwrite: bool = False) -> Path:
    """Write a random-weight Qwen2-VL built offline (tiny_model.py) to ``out_dir``, atomically."""
    from .tiny_model import build_tiny_qwen2vl

    out_dir = Path(out_dir)
    with OutputLock(out_dir):
        check_output_dir(out_dir, overwrite)
        staging = fresh_staging(out_dir)
        build_tiny_qwen2vl(staging, preset=preset, seed=seed)
        write_manifest(staging)
        publish(staging, out_dir)
    return out_dir


def _step(config: QuantConfig) -> LayerStep:
    if isinstance(config, GPTQConfig):
        return lambda layer, index, runner, meter, progress: quantize_layer_gptq(layer, index, runner, meter,
                                                                                 QWEN2_VL, config)
    if isinstance(config, RTNConfig):
        return lambda layer, index, runner, meter, progress: quantize_layer_rtn(layer, index, runner, meter, config)
    if isinstance(config, AWQConfig):
        return lambda layer, index, runner, meter, progress: quantize_layer_awq(layer, index, runner, meter,
                                                                                QWEN2_VL, config, progress)
    raise ConfigError(f"unsupported config type {type(config).__name__}")


def _quantization_config(config: QuantConfig) -> dict[str, Any]:
    if isinstance(config, AWQConfig):
        return awq_format.awq_quantization_config(bits=config.bits, group_size=config.group_size,
                                                  zero_point=config.zero_point, tool_version=__version__)
    gptq = config if isinstance(config, GPTQConfig) else GPTQConfig(config.bits, config.group_size, config.sym)
    return gptq_format.quantization_config(
        bits=gptq.bits, group_size=gptq.group_size, sym=gptq.sym, desc_act=gptq.desc_act,
        static_groups=gptq.static_groups, damp_percent=gptq.damp_percent,
        true_sequential=gptq.true_sequential, tool_version=__version__,
    )


def _check_compatible(text_config: Any, config: QuantConfig, intermediate_size: int | None = None) -> None:
    """Fail before any work if the model's Linear sizes do not fit the requested format."""
    heads_dim = text_config.num_attention_heads * getattr(
        text_config, "head_dim", text_config.hidden_size // text_config.num_attention_heads)
    in_sizes = {"hidden_size": text_config.hidden_size, "attention output": heads_dim,
                "intermediate_size": intermediate_size or text_config.intermediate_size}
    pack = 32 // config.bits
    for what, size in in_sizes.items():
        if config.group_size != -1 and size % config.group_size:
            raise ConfigError(f"group size {config.group_size} does not divide the model's {what} ({size})")
        if size % pack:
            raise ConfigError(f"the model's {what} ({size}) is not a multiple of {pack}, needed to pack {config.bits}-bit")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """A torch device from a user's choice ("cpu", "cuda", "cuda:N"; None or "auto": cuda
    when present), or a one-line ConfigError."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {device!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("a CUDA device was asked for but no CUDA GPU is available")
    return device


def _samples(calib_data: Any, processor: Any, calibration: CalibrationConfig):
    logger.info("reading and processing the calibration samples")
    return build_samples(
        calib_data, processor, num_samples=calibration.num_samples, seed=calibration.seed,
        min_pixels=calibration.min_pixels, max_pixels=calibration.max_pixels, max_length=calibration.max_length,
        shuffle=calibration.shuffle, max_frames=calibration.max_frames, fps=calibration.fps,
        max_visual_tokens=calibration.max_visual_tokens, skip_bad_samples=calibration.skip_bad_samples,
    )


def _report(config: QuantConfig, calibration: str, linears: list[LinearReport], started: float) -> QuantReport:
    # A pair that could not be smoothed (AWQ's v -> o under grouped-query attention) is
    # skipped in every layer: say it once.
    skipped = {f"{r.name} gets no AWQ scales: {r.smoothing[len('none: '):]}" for r in linears
               if r.smoothing and r.smoothing.startswith("none: ")}
    return QuantReport(method=config.method, config=dataclasses.asdict(config), calibration=calibration,
                       linears=linears, notes=sorted(skipped), seconds=time.perf_counter() - started)


def _fingerprint(model_dir: Path, config: QuantConfig, calibration: CalibrationConfig,
                 samples: list[CalibrationSample], padded_intermediate_size: int | None) -> str:
    """Identifies a run: same model files, options and calibration tensors -> same value."""
    digest = hashlib.sha256()
    digest.update(f"{__version__} {config.method} {dataclasses.asdict(config)} {dataclasses.asdict(calibration)} "
                  f"{padded_intermediate_size}".encode())
    for path in sorted(model_dir.iterdir()):
        if path.is_file():
            digest.update(f"{path.name}:{path.stat().st_size}".encode())
    digest.update((model_dir / "config.json").read_bytes())
    for sample in samples:
        for key in sorted(sample.inputs):
            digest.update(key.encode())
            digest.update(sample.inputs[key].contiguous().cpu().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class _NoSink:
    """In-memory runs: the layer was quantized in place, nothing to write."""

    def layer_done(self, index, layer, reports, next_hidden) -> None:
        return None


class _StagingSink:
    """Directory runs: write each finished layer (all its tensors) and the resume state."""

    def __init__(self, staging: Staging, legacy_keys: bool) -> None:
        self.staging = staging
        self.legacy_keys = legacy_keys
        self.reports = staging.reports()

    def layer_done(self, index: int, layer: nn.Module, reports: list[LinearReport],
                   next_hidden: list[torch.Tensor]) -> None:
        prefix = QWEN2_VL.layer_prefix(index)
        tensors = {key_for_module_name(f"{prefix}.{name}", self.legacy_keys): t.detach()
                   for name, t in layer.state_dict().items()}
        self.reports += [dataclasses.asdict(r) for r in reports]
        self.staging.finish_layer(index, tensors, next_hidden, self.reports)


def _write_output(staging: Staging, source: DirectorySource, config: QuantConfig, max_shard_bytes: int,
                  report: QuantReport) -> None:
    """Shards from the untouched tensors of the input plus the finished layers (both copied
    as bytes, one chunk in memory at a time); config; processor files."""
    reader = source.reader
    stored: dict[str, StoredTensor] = {}
    for filename in sorted(set(reader.key_to_file.values())):
        for key, tensor in read_header(source.model_dir / filename).items():
            if layer_index_of(module_name_for_key(key)) is None:
                stored[key] = tensor
    for path in staging.layer_files():
        stored.update(read_header(path))
    write_shards_from_stored(staging.path, stored, max_shard_bytes)
    raw_config = json.loads((source.model_dir / "config.json").read_text())
    raw_config["quantization_config"] = _quantization_config(config)
    if source.padded_intermediate_size:
        for block in (raw_config, raw_config.get("text_config", {})):
            if "intermediate_size" in block:
                block["intermediate_size"] = source.padded_intermediate_size
    write_json(staging.path / "config.json", raw_config)
    for path in sorted(source.model_dir.iterdir()):
        if path.is_file() and path.suffix in PROCESSOR_FILE_SUFFIXES and path.name not in NOT_COPIED:
            shutil.copy2(path, staging.path / path.name)
    write_json(staging.path / "quantization_report.json", report.to_dict())
    staging.clear_resume_state()
