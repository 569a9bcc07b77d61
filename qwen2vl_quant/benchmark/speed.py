"""Speed and memory, measured the Qwen2-VL README's way.

Per run (one model, one input length): batch 1, a prompt of exactly ``input_length``
tokens, greedy generation of exactly ``new_tokens`` tokens (min_new_tokens =
max_new_tokens, so an early end-of-sequence cannot shorten it), timed between device
synchronizations; tokens/s = new tokens / that time. Memory on a GPU is the peak
``torch.cuda.max_memory_allocated`` (weights, activations and KV cache), summed over the
GPUs the model uses; on the CPU it is the peak resident memory (``ru_maxrss``) of the
process that ran it. Each run is its own fresh Python process (``isolate=True``) so that
the peak belongs to that run alone and an out-of-memory failure ends only that run.

Besides the README's columns: the time to the first token (the prefill of the prompt),
and a multimodal prefill: a chat prompt with one picture, whose time covers the vision
tower, the merger and the language model's prefill (time to first token again).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import ConfigError
from .machine import current_rss_bytes, peak_rss_bytes
from .models import ModelEntry, device_count, load_model, release_memory
from .paths import describe_paths, record_paths

logger = logging.getLogger(__name__)

GPU_INPUT_LENGTHS = (1, 6144, 14336, 30720)  # the Qwen2-VL README's (its 63488 and 129024 need >1 GPU)
CPU_INPUT_LENGTHS = (1, 256)
GPU_NEW_TOKENS, CPU_NEW_TOKENS = 2048, 32
GPU_IMAGE_SIZE, CPU_IMAGE_SIZE = 896, 448  # 1024 and 256 visual tokens before the processor's bounds
IMAGE_PROMPT = "Describe this image."


@dataclass(frozen=True)
class SpeedConfig:
    """What the speed table measures; ``None`` fields take the device's default.

    input_lengths: prompt lengths in tokens (GPU default 1, 6144, 14336, 30720; CPU 1, 256).
    new_tokens: tokens generated per run, exactly (GPU 2048, CPU 32).
    image_size: side in pixels of the square picture of the multimodal-prefill run (GPU 896,
        CPU 448; the processor's pixel bounds apply); 0 skips that run.
    repeats: timed runs per configuration, after one untimed 2-token warm-up with the same
        prompt; the median is reported (all are in the JSON).
    isolate: run each configuration in a fresh subprocess (per-run peak memory; an OOM
        ends one run only). In-process runs report the process's peak RSS on CPU.
    timeout_s: per-run limit of an isolated run (None: none).
    """

    input_lengths: tuple[int, ...] | None = None
    new_tokens: int | None = None
    image_size: int | None = None
    repeats: int = 1
    isolate: bool = True
    timeout_s: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.input_lengths is not None:
            object.__setattr__(self, "input_lengths", tuple(int(x) for x in self.input_lengths))
            if not self.input_lengths or min(self.input_lengths) < 1:
                raise ConfigError(f"input lengths must be at least 1 token, got {self.input_lengths}")
        if self.new_tokens is not None and self.new_tokens < 1:
            raise ConfigError(f"new_tokens must be at least 1, got {self.new_tokens}")
        if self.image_size is not None and self.image_size != 0 and self.image_size < 28:
            raise ConfigError(f"image_size must be 0 (skip) or at least 28 pixels, got {self.image_size}")
        if self.repeats < 1:
            raise ConfigError(f"repeats must be at least 1, got {self.repeats}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ConfigError(f"timeout_s must be positive, got {self.timeout_s}")

    def for_device(self, device: torch.device) -> "SpeedConfig":
        """This config with the device's defaults filled in."""
        gpu = device.type == "cuda"
        return dataclasses.replace(
            self,
            input_lengths=self.input_lengths or (GPU_INPUT_LENGTHS if gpu else CPU_INPUT_LENGTHS),
            new_tokens=self.new_tokens or (GPU_NEW_TOKENS if gpu else CPU_NEW_TOKENS),
            image_size=(GPU_IMAGE_SIZE if gpu else CPU_IMAGE_SIZE) if self.image_size is None else self.image_size,
        )


@dataclass(frozen=True)
class Runtime:
    """Where and how models are run (shared by the speed and the quality measurements)."""

    device: str = "cpu"
    loader: str = "ours"
    attn_implementation: str | None = "sdpa"
    threads: int | None = None  # torch CPU threads (None: torch's default)
    multi_gpu: bool = False  # transformers-loaded models spread over all visible GPUs (device_map="auto")


@dataclass
class SpeedResult:
    """One row: a text run (input_length tokens -> new_tokens) or a multimodal prefill."""

    quantization: str  # the model's label: BF16, GPTQ-Int4, ...
    model_dir: str
    kind: str  # "text" or "image"
    input_length: int  # prompt tokens (for "image": text + visual tokens)
    new_tokens: int = 0
    tokens_per_s: float | None = None  # new_tokens / (generation time), the README's figure
    prefill_s: float | None = None  # time to the first token
    decode_tokens_per_s: float | None = None  # (new_tokens - 1) / (time after the first token)
    seconds: list[float] = field(default_factory=list)  # every timed repeat
    gpu_num: int = 0
    memory_bytes: int | None = None
    memory_kind: str = ""  # "cuda_max_allocated" | "peak_rss" | "process_peak_rss"
    baseline_rss_bytes: int | None = None  # RSS before the model was loaded (CPU)
    weight_bytes: int = 0
    kernel_path: str = ""
    image_tokens: int | None = None
    image_size: list[int] | None = None  # [height, width] after the processor
    load_s: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_specs(entries: list[ModelEntry], config: SpeedConfig) -> list[dict[str, Any]]:
    """The runs of a speed table, in table order: per input length, every model; then the
    multimodal prefill of every model. ``config`` must have its device defaults filled in."""
    specs = []
    for length in config.input_lengths:
        specs += [{"entry": dataclasses.asdict(e), "kind": "text", "input_length": length} for e in entries]
    if config.image_size:
        specs += [{"entry": dataclasses.asdict(e), "kind": "image", "input_length": 0} for e in entries]
    return specs


def run_speed(entries: list[ModelEntry], config: SpeedConfig, runtime: Runtime,
              advance: Callable[[str], None] | None = None) -> list[SpeedResult]:
    """Every run of ``run_specs``; a failed run is reported in its row, the rest go on."""
    config = config.for_device(torch.device(runtime.device))
    results = []
    for spec in run_specs(entries, config):
        spec = {**spec, "config": dataclasses.asdict(config), "runtime": dataclasses.asdict(runtime)}
        what = f"speed {spec['entry']['label']} " + (f"{spec['input_length']} tokens" if spec["kind"] == "text" else "image")
        if advance:
            advance(what)
        result = run_isolated(spec, config.timeout_s) if config.isolate else run_spec(spec, isolated=False)
        if result.error:
            logger.warning("%s failed: %s", what, result.error)
        results.append(result)
    return results


def run_isolated(spec: dict[str, Any], timeout_s: float | None) -> SpeedResult:
    """``run_spec`` in a fresh Python process (qwen2vl_quant.benchmark.worker)."""
    with tempfile.TemporaryDirectory(prefix="qwen2vl-bench-") as tmp:
        spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec))
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "qwen2vl_quant.benchmark.worker", str(spec_path), str(result_path)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired:
            return _failed(spec, f"timeout after {timeout_s:g} s")
        if result_path.is_file():
            return SpeedResult(**json.loads(result_path.read_text()))
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            hint = " (out of memory?)" if proc.returncode == -signal.SIGKILL else ""
            return _failed(spec, f"killed by {name}{hint}")
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        return _failed(spec, lines[-1].strip() if lines else f"worker exited with code {proc.returncode}")


def run_spec(spec: dict[str, Any], isolated: bool) -> SpeedResult:
    """Load the model, measure one configuration, report its memory. Never raises for a
    failed measurement: the error's one line goes into the result."""
    entry = ModelEntry(**spec["entry"])
    config, runtime = SpeedConfig(**spec["config"]), Runtime(**spec["runtime"])
    device = torch.device(runtime.device)
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    result = SpeedResult(quantization=entry.label, model_dir=entry.path, kind=spec["kind"],
                         input_length=spec["input_length"], weight_bytes=entry.weight_bytes)
    if device.type == "cuda":
        for index in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(index)
    result.baseline_rss_bytes = current_rss_bytes()
    model = None
    try:
        started = time.perf_counter()
        model, processor = load_model(entry, device, runtime.loader, runtime.attn_implementation, runtime.multi_gpu)
        result.load_s = round(time.perf_counter() - started, 3)
        result.gpu_num = device_count(model)
        if spec["kind"] == "text":
            measure_text(model, processor, result, spec["input_length"], config)
        else:
            measure_image(model, processor, result, config)
    except Exception as exc:  # noqa: BLE001 - a failed run is a row of the table, not the end of the benchmark
        logger.debug("run failed", exc_info=True)
        result.error = one_line(exc)
    finally:
        result.memory_bytes, result.memory_kind = _peak_memory(device, isolated)
        model = None
        release_memory()
    return result


@torch.inference_mode()
def measure_text(model: Any, processor: Any, result: SpeedResult, length: int, config: SpeedConfig) -> None:
    """Fill ``result`` with the generation of exactly ``config.new_tokens`` tokens after a
    ``length``-token prompt (random ordinary tokens, fixed seed)."""
    device = model.device
    ids = prompt_ids(processor, model.config, length, config.seed).to(device)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    # Untimed warm-up with the same shapes (CUDA context, Triton compilation, allocator);
    # the pass whose dispatcher counts give the path column.
    with record_paths(model) as log:
        _generate(model, processor, inputs, 2)
    result.kernel_path = describe_paths(model, log)
    runs = [_generate(model, processor, inputs, config.new_tokens) for _ in range(config.repeats)]
    total, first = _median_run(runs)
    n = config.new_tokens
    result.new_tokens = n
    result.seconds = [round(t, 4) for t, _ in runs]
    result.tokens_per_s = n / total
    result.prefill_s = first
    result.decode_tokens_per_s = (n - 1) / (total - first) if n > 1 and total > first else None


@torch.inference_mode()
def measure_image(model: Any, processor: Any, result: SpeedResult, config: SpeedConfig) -> None:
    """Fill ``result`` with the time to the first token of a one-picture chat prompt."""
    image = test_picture(config.image_size, config.seed)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": IMAGE_PROMPT}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=[image], return_tensors="pt").to(model.device)
    grid = inputs["image_grid_thw"][0].tolist()
    merge = getattr(processor.image_processor, "merge_size", 2)
    patch = getattr(processor.image_processor, "patch_size", 14)
    result.image_tokens = int(grid[0] * grid[1] * grid[2]) // merge**2
    result.image_size = [int(grid[1]) * patch, int(grid[2]) * patch]
    result.input_length = int(inputs["input_ids"].shape[1])
    with record_paths(model) as log:  # untimed warm-up, as in measure_text
        _generate(model, processor, inputs, 1)
    result.kernel_path = describe_paths(model, log)
    runs = [_generate(model, processor, inputs, 1) for _ in range(config.repeats)]
    total, _ = _median_run(runs)
    result.new_tokens = 1
    result.seconds = [round(t, 4) for t, _ in runs]
    result.prefill_s = total
    result.tokens_per_s = None


def prompt_ids(processor: Any, model_config: Any, length: int, seed: int) -> torch.Tensor:
    """[1, length] ordinary (non-special) token ids, drawn with ``seed``."""
    tokenizer = processor.tokenizer
    vocab = model_config.get_text_config().vocab_size
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    allowed = torch.tensor([i for i in range(min(vocab, len(tokenizer))) if i not in special])
    generator = torch.Generator().manual_seed(seed)
    return allowed[torch.randint(len(allowed), (1, length), generator=generator)]


def test_picture(size: int, seed: int):
    """A deterministic noise picture (content does not change the compute)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


class _FirstToken:
    """A logits processor that timestamps the first call: the prefill is done then."""

    def __init__(self, sync: Callable[[], None]) -> None:
        self.sync = sync
        self.at: float | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.at is None:
            self.sync()
            self.at = time.perf_counter()
        return scores


def greedy_config(model: Any, processor: Any, max_new_tokens: int, min_new_tokens: int | None = None):
    """Greedy decoding with the model's end/pad tokens. The sampling knobs of the model's own
    generation config (Qwen2-VL-Instruct ships top_k=1, temperature 0.01) are unset, not
    merged in."""
    from transformers import GenerationConfig

    tokenizer = processor.tokenizer
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    pad = model.generation_config.pad_token_id
    if pad is None:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    return GenerationConfig(max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, do_sample=False,
                            num_beams=1, eos_token_id=eos, pad_token_id=pad, use_cache=True,
                            temperature=None, top_p=None, top_k=None)


def _generate(model: Any, processor: Any, inputs: dict[str, torch.Tensor], new_tokens: int) -> tuple[float, float]:
    """(seconds for the whole generation, seconds to the first token), between syncs."""
    from transformers import LogitsProcessorList

    generation = greedy_config(model, processor, new_tokens, new_tokens)
    sync = _syncer(model)
    timer = _FirstToken(sync)
    sync()
    started = time.perf_counter()
    out = model.generate(**inputs, generation_config=generation, logits_processor=LogitsProcessorList([timer]))
    sync()
    total = time.perf_counter() - started
    made = out.shape[1] - inputs["input_ids"].shape[1]
    if made != new_tokens:
        raise RuntimeError(f"generated {made} tokens, expected exactly {new_tokens}")
    return total, (timer.at or started + total) - started


def _median_run(runs: list[tuple[float, float]]) -> tuple[float, float]:
    total = statistics.median(t for t, _ in runs)
    return min(runs, key=lambda r: abs(r[0] - total))


def _syncer(model: Any) -> Callable[[], None]:
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    if not devices:
        return lambda: None

    def sync() -> None:
        for index in devices:
            torch.cuda.synchronize(index)

    return sync


def _peak_memory(device: torch.device, isolated: bool) -> tuple[int | None, str]:
    if device.type == "cuda":
        return sum(torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count())), "cuda_max_allocated"
    return peak_rss_bytes(), "peak_rss" if isolated else "process_peak_rss"


def _failed(spec: dict[str, Any], error: str) -> SpeedResult:
    entry = spec["entry"]
    return SpeedResult(quantization=entry["label"], model_dir=entry["path"], kind=spec["kind"],
                       input_length=spec["input_length"], weight_bytes=entry["weight_bytes"], error=error)


def one_line(exc: BaseException) -> str:
    """The first line of an error, "OOM" for any out-of-memory error (GPU or CPU)."""
    text = str(exc).strip()
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text.lower() \
            or "can't allocate memory" in text.lower():
        return "OOM"
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300]
