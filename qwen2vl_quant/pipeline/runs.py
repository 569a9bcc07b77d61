"""The two kinds of run behind the public verbs (api.py): a model in memory quantized in
place, and a checkpoint directory streamed layer by layer into a new one.

Both capture the first decoder layer's inputs and run the same layer loop
(layerwise.run_layers) with the method's step (methods.py); they differ in where layers come
from (source.py) and where finished layers go: nowhere (in place), or into the staging
folder of the output (staging.py), from which the output is assembled and published.
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

from .. import __version__
from ..arch import ArchSpec
from ..calibration.batches import CalibrationSample, build_samples
from ..config import CalibrationConfig, QuantConfig
from ..errors import ConfigError, ModelLoadError
from ..kernels.layout import resolve_group_size
from ..report import LinearReport, QuantReport
from .layerwise import capture_inputs, run_layers
from .methods import method_of
from .output_dir import (
    OutputLock,
    check_output_dir,
    check_partial,
    fresh_staging,
    publish,
    staging_path,
    write_json,
    write_manifest,
)
from .padding import padded_intermediate_size
from .safetensors_io import StoredTensor, read_header
from .source import DirectorySource, ModelSource, load_processor
from .staging import Staging
from .writer import parse_size, write_shards, write_shards_from_stored

logger = logging.getLogger(__name__)

# Files of a model directory that describe the processor, tokenizer and generation defaults.
PROCESSOR_FILE_SUFFIXES = (".json", ".jinja", ".txt", ".model", ".tiktoken")
NOT_COPIED = {"config.json", "model.safetensors.index.json"}


def quantize_in_place(model: nn.Module, calib_data: Any, config: QuantConfig, *, processor: Any,
                      calibration: CalibrationConfig, device: torch.device, show_progress: bool) -> QuantReport:
    source = ModelSource(model)
    method = method_of(config)
    check_compatible(source.text_config, config)
    samples, summary = read_calibration(calib_data, processor, calibration)
    started = time.perf_counter()
    inputs = capture_inputs(source, samples, device, device, show_progress)
    linears = run_layers(source, inputs, method.step(source.spec, config), _NoSink(), device=device,
                         store_device=device, show_progress=show_progress)
    model.config.quantization_config = method.checkpoint_config(config)
    return build_report(config, summary.describe(), linears, started)


def quantize_directory(model_dir: Path, out_dir: Path, config: QuantConfig, *, calib_data: Any,
                       calibration: CalibrationConfig, device: torch.device, store: torch.device,
                       max_shard_size: str | int, overwrite: bool, resume: bool, tensor_parallel: int | None,
                       show_progress: bool) -> QuantReport:
    max_shard_bytes = parse_size(max_shard_size)
    with OutputLock(out_dir):
        check_output_dir(out_dir, overwrite, inputs=[model_dir])
        check_partial(out_dir, resume)
        source = DirectorySource(model_dir)
        try:
            if tensor_parallel:
                size = padded_intermediate_size(source.text_config.intermediate_size, tensor_parallel,
                                                config.group_size)
                source.padded_intermediate_size = size
                logger.info("padding the MLP intermediate size %d -> %d for %d-way tensor parallelism",
                            source.text_config.intermediate_size, size, tensor_parallel)
            check_compatible(source.text_config, config, source.padded_intermediate_size)
            report, staging = _quantize_layers(source, out_dir, config, calib_data, calibration, device, store,
                                               resume, show_progress)
            logger.info("writing the checkpoint shards to %s", staging.path)
            _write_output(staging, source, config, max_shard_bytes, report)
        finally:
            source.close()
        write_manifest(staging.path)
        publish(staging.path, out_dir)
    report.output_dir = str(out_dir)
    return report


def _quantize_layers(source: DirectorySource, out_dir: Path, config: QuantConfig, calib_data: Any,
                     calibration: CalibrationConfig, device: torch.device, store: torch.device, resume: bool,
                     show_progress: bool) -> tuple[QuantReport, Staging]:
    """Capture (or reload) the calibration inputs, then quantize the layers into the staging folder."""
    processor = load_processor(source.model_dir)
    samples, summary = read_calibration(calib_data, processor, calibration)
    staging = Staging(staging_path(out_dir),
                      fingerprint(source.model_dir, config, calibration, samples, source.padded_intermediate_size),
                      source.num_layers)
    finished = staging.start(resume)
    started = time.perf_counter()
    if staging.captured:
        logger.info("resuming: %d of %d layers finished, calibration inputs reloaded", finished, source.num_layers)
        inputs = staging.load_inputs()
        inputs = [dataclasses.replace(s, hidden=s.hidden.to(store)) for s in inputs]
    else:
        inputs = capture_inputs(source, samples, device, store, show_progress)
        staging.save_captured(inputs)
    sink = _StagingSink(staging, source.spec, source.reader.legacy_keys)
    run_layers(source, inputs, method_of(config).step(source.spec, config), sink, device=device, store_device=store,
               start_layer=finished, show_progress=show_progress)
    linears = [LinearReport(**r) for r in staging.reports()]
    return build_report(config, summary.describe(), linears, started), staging


def save_model(model: nn.Module, out_dir: Path, processor: Any, *, spec: ArchSpec, max_shard_size: str | int,
               overwrite: bool) -> Path:
    """Write a model quantized in memory as a sharded checkpoint, atomically, in the key
    style transformers writes for its family."""
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
        tensors = {spec.key_for_module_name(name, legacy=spec.saves_legacy_keys): t.detach().cpu()
                   for name, t in state.items()}
        write_shards(staging, tensors, max_shard_bytes)
        model.config.save_pretrained(staging)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(staging)
        if processor is not None:
            processor.save_pretrained(staging)
        write_manifest(staging)
        publish(staging, out_dir)
    return out_dir


def write_demo(out_dir: Path, *, family: str, preset: str, seed: int, overwrite: bool) -> Path:
    """A random-weight test model built offline (testing/), published atomically."""
    from ..testing.tiny_families import FAMILIES, build_tiny_model
    from ..testing.tiny_model import PRESETS

    if family not in FAMILIES:
        raise ConfigError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    if preset not in PRESETS or (family != "qwen2_vl" and preset != "small"):
        choices = ", ".join(PRESETS) if family == "qwen2_vl" else "small"
        raise ConfigError(f"no {preset!r} preset for the {family} demo model; choose one of {choices}")
    with OutputLock(out_dir):
        check_output_dir(out_dir, overwrite)
        staging = fresh_staging(out_dir)
        build_tiny_model(staging, family=family, preset=preset, seed=seed)
        write_manifest(staging)
        publish(staging, out_dir)
    return out_dir


def read_calibration(calib_data: Any, processor: Any,
                     calibration: CalibrationConfig) -> tuple[list[CalibrationSample], Any]:
    logger.info("reading and processing the calibration samples")
    return build_samples(calib_data, processor, calibration)


def check_compatible(text_config: Any, config: QuantConfig, intermediate_size: int | None = None) -> None:
    """Fail before any work if the model's Linear sizes do not fit the requested format."""
    head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // text_config.num_attention_heads
    heads_dim = text_config.num_attention_heads * head_dim
    in_sizes = {"hidden_size": text_config.hidden_size, "attention output": heads_dim,
                "intermediate_size": intermediate_size or text_config.intermediate_size}
    pack = 32 // config.bits
    for what, size in in_sizes.items():
        try:
            resolve_group_size(config.group_size, size)
        except ValueError:
            raise ConfigError(f"group size {config.group_size} does not divide the model's {what} ({size})") from None
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


def build_report(config: QuantConfig, calibration: str, linears: list[LinearReport], started: float) -> QuantReport:
    # A pair that could not be smoothed (AWQ's v -> o under grouped-query attention) is
    # skipped in every layer: say it once.
    skipped = {f"{r.name} gets no AWQ scales: {r.smoothing[len('none: '):]}" for r in linears
               if r.smoothing and r.smoothing.startswith("none: ")}
    fallbacks = [f"layer {r.layer} {r.name}: {r.fallback}" for r in linears if r.fallback]
    return QuantReport(method=config.method, config=dataclasses.asdict(config), calibration=calibration,
                       linears=linears, notes=sorted(skipped) + fallbacks, seconds=time.perf_counter() - started)


def fingerprint(model_dir: Path, config: QuantConfig, calibration: CalibrationConfig,
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

    def __init__(self, staging: Staging, spec: ArchSpec, legacy_keys: bool) -> None:
        self.staging = staging
        self.spec = spec
        self.legacy_keys = legacy_keys
        self.reports = staging.reports()

    def layer_done(self, index: int, layer: nn.Module, reports: list[LinearReport],
                   next_hidden: list[torch.Tensor]) -> None:
        prefix = self.spec.layer_prefix(index)
        tensors = {self.spec.key_for_module_name(f"{prefix}.{name}", self.legacy_keys): t.detach()
                   for name, t in layer.state_dict().items()}
        self.reports += [dataclasses.asdict(r) for r in reports]
        self.staging.finish_layer(index, tensors, next_hidden, self.reports)


def _write_output(staging: Staging, source: DirectorySource, config: QuantConfig, max_shard_bytes: int,
                  report: QuantReport) -> None:
    """Shards from the untouched tensors of the input plus the finished layers (both copied
    as bytes, one chunk in memory at a time); config; processor files."""
    reader, spec = source.reader, source.spec
    stored: dict[str, StoredTensor] = {}
    for filename in sorted(set(reader.key_to_file.values())):
        for key, tensor in read_header(source.model_dir / filename).items():
            # Outside the layers, only the kept modules' tensors (DirectorySource checked it).
            if spec.layer_index_of(spec.module_name_for_key(key)) is None:
                stored[key] = tensor
    for path in staging.layer_files():
        stored.update(read_header(path))
    write_shards_from_stored(staging.path, stored, max_shard_bytes)
    raw_config = json.loads((source.model_dir / "config.json").read_text())
    raw_config["quantization_config"] = method_of(config).checkpoint_config(config)
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
