"""qwen2vl-quant vs GPTQModel, side by side on the same model, data and settings (issue 6).

Both tools quantize the language model of the same random-weight Qwen2-VL with the real
Qwen2-VL-2B shapes (1.5 B language model + 0.67 B vision tower, BF16, built offline) to
GPTQ Int4, group 128, symmetric, no act-order, damp 0.01, on the same image calibration
conversations. Each tool runs in its own child process, one after the other (never at the
same time), and the parent measures:

  wall s       from spawning the child to reaping it (imports, model load, calibration,
               quantization and writing the checkpoint: what a user waits for);
  peak RSS     the sum of the resident set of the child and all its descendants, polled
               with psutil every 0.2 s (the figure in the table); also ru_maxrss from
               os.wait4 on that child (the kernel's exact peak of the largest single
               process of the tree, which is what getrusage(RUSAGE_CHILDREN) reports for a
               parent with that one child), and the cumulative RUSAGE_CHILDREN at the end;
  CPU s        user + system time of the child tree (from wait4): less sensitive to other
               jobs sharing the CPU than wall time.

Then a third child measures the output error of both checkpoints on held-out samples
(image + text conversations made by this script with another seed: no image or text of the
calibration set): the relative error of the final-layer hidden states (after the final
RMSNorm, the input of lm_head), ||h_q - h_bf16|| / ||h_bf16|| pooled over all tokens of all
held-out samples, against the BF16 model, every model in float32 (BF16 weights upcast
exactly) on the same processed inputs. The BF16 model is loaded with transformers'
from_pretrained; both quantized checkpoints with our ``load_quantized`` (which reads any GPTQ
v1 checkpoint of Qwen2-VL), so the error measures the weights each tool chose and nothing
else.

    # the full benchmark (about 30 min on 2 cores); reuses a model / calibration set if given
    python benchmarks/vs_gptqmodel.py --model-dir /tmp/b2/model --calib /tmp/b2/calib16.jsonl
    # a quick smoke run on the "small" preset (builds its own model and data)
    python benchmarks/vs_gptqmodel.py --preset small --workdir /tmp/vs_small

Writes benchmarks/results/vs_gptqmodel.md and .json (preset 2b-shapes), or
WORKDIR/vs_gptqmodel.md/.json for other presets, unless --results is given.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
RESULTS = HERE.parent / "results" / "vs_gptqmodel"
GB = 1e9

# The settings both tools are given (issue 6): GPTQ Int4, group 128, symmetric, no act-order.
BITS, GROUP_SIZE, SYM, DAMP = 4, 128, True, 0.01
# Issue 6's targets: ours / theirs.
TARGETS = {"wall": 0.4, "rss": 0.6, "error": 1.0}
# Issue 6's reference measurement (a teammate, same machine type): GPTQModel 7.7 on this setup.
ISSUE_REFERENCE = {"tool": "GPTQModel 7.7.0", "wall_s": 858.0, "peak_rss_gb": 4.45}

IMAGE_SIZE = (448, 336)  # 16 x 12 = 192 visual tokens per image after the 2x2 merge
HELD_OUT_SEED = 1000
HELD_OUT = 8
POLL_S = 0.2


# ----------------------------------------------------------------------------- data

def make_calibration(directory: Path, n: int) -> Path:
    """n image conversations; the same generator (and so the same files for n=16) as the
    /tmp/b2/calib16.jsonl set the issue was measured with: coloured rectangles with labels."""
    from PIL import Image, ImageDraw

    rng = random.Random(0)
    img_dir = directory / "calib_img"
    img_dir.mkdir(parents=True, exist_ok=True)
    path = directory / f"calib{n}.jsonl"
    with open(path, "w") as f:
        for i in range(n):
            im = Image.new("RGB", IMAGE_SIZE, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
            d = ImageDraw.Draw(im)
            for _ in range(12):
                x0, y0 = rng.randrange(400), rng.randrange(300)
                d.rectangle([x0, y0, x0 + rng.randrange(10, 80), y0 + rng.randrange(10, 80)],
                            fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
                d.text((rng.randrange(400), rng.randrange(300)), f"item {rng.randrange(1000)}", fill=(0, 0, 0))
            p = img_dir / f"im{i}.png"
            im.save(p)
            conv = [{"role": "user", "content": [{"type": "image", "image": str(p)},
                                                 {"type": "text", "text": "Describe the picture and read the labels."}]},
                    {"role": "assistant", "content": "There are several colored rectangles with labels such as item 12 "
                                                     "and item 345 on a plain background."}]
            f.write(json.dumps(conv) + "\n")
    return path


_QUESTIONS = ("What shapes do you see, and what colors are they?", "Count the objects in this image.",
              "Output all text in the image.", "Where is the largest shape?",
              "Generate a caption for this image.", "What is in the picture?",
              "Which color covers most of the background?", "Describe this image.")


def make_held_out(directory: Path, n: int = HELD_OUT) -> Path:
    """n image + text conversations that share nothing with the calibration set: another
    seed, ellipses and lines besides rectangles, other questions, per-image answers."""
    from PIL import Image, ImageDraw

    rng = random.Random(HELD_OUT_SEED)
    img_dir = directory / "heldout_img"
    img_dir.mkdir(parents=True, exist_ok=True)
    colors = ("red", "green", "blue", "yellow", "orange", "purple", "black", "white")
    path = directory / f"heldout{n}.jsonl"
    with open(path, "w") as f:
        for i in range(n):
            bg = rng.choice(colors)
            im = Image.new("RGB", IMAGE_SIZE, bg)
            d = ImageDraw.Draw(im)
            shapes = []
            for _ in range(rng.randrange(3, 8)):
                kind, fg = rng.choice(("ellipse", "rectangle", "line")), rng.choice(colors)
                x0, y0 = rng.randrange(380), rng.randrange(280)
                box = [x0, y0, x0 + rng.randrange(20, 120), y0 + rng.randrange(20, 100)]
                if kind == "ellipse":
                    d.ellipse(box, fill=fg)
                elif kind == "rectangle":
                    d.rectangle(box, fill=fg)
                else:
                    d.line(box, fill=fg, width=4)
                shapes.append(f"a {fg} {kind}")
            number = rng.randrange(10000)
            d.text((rng.randrange(380), rng.randrange(300)), f"No. {number}", fill="black" if bg != "black" else "white")
            p = img_dir / f"held{i}.png"
            im.save(p)
            answer = f"On a {bg} background there are {len(shapes)} shapes: {', '.join(shapes)}. The text reads No. {number}."
            conv = [{"role": "user", "content": [{"type": "image", "image": str(p)},
                                                 {"type": "text", "text": _QUESTIONS[i % len(_QUESTIONS)]}]},
                    {"role": "assistant", "content": answer}]
            f.write(json.dumps(conv) + "\n")
    return path


def read_jsonl(path: Path) -> list:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def image_paths(conversations: list) -> list[str]:
    return [item["image"] for conv in conversations for msg in conv if isinstance(msg["content"], list)
            for item in msg["content"] if item.get("type") == "image"]


def _local(path: str) -> str:
    return path.removeprefix("file://")


def check_disjoint(calib: Path, held_out: Path) -> dict:
    """The held-out set shares no image (by content) and no prompt+answer with the calibration set."""
    def digests(convs):
        return {hashlib.sha256(Path(_local(p)).read_bytes()).hexdigest() for p in image_paths(convs)}

    def texts(convs):
        return {json.dumps([m for m in conv if not isinstance(m["content"], list)] +
                           [i for m in conv if isinstance(m["content"], list) for i in m["content"] if i.get("type") == "text"])
                for conv in convs}

    c, h = read_jsonl(calib), read_jsonl(held_out)
    shared_images = digests(c) & digests(h)
    shared_texts = texts(c) & texts(h)
    if shared_images or shared_texts:
        raise SystemExit(f"held-out set overlaps the calibration set: {len(shared_images)} images, {len(shared_texts)} texts")
    return {"calibration_images": len(image_paths(c)), "held_out_images": len(image_paths(h)),
            "shared_images": 0, "shared_texts": 0}


# ----------------------------------------------------------------------------- machine

def machine_info() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)),
        "cpu_flags": sorted(f for f in flags if f.startswith(("avx512_bf16", "amx", "avx2"))),
        "ram_gib": round(ram / 2**30, 1),
        "versions": versions(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty_files": len((_git("status", "--porcelain") or "").splitlines()),
    }


def versions() -> dict:
    from importlib import metadata

    out = {}
    for name in ("torch", "transformers", "optimum", "gptqmodel", "qwen2vl-quant", "safetensors", "tokenizers",
                 "accelerate", "torchvision", "pillow", "psutil", "qwen-vl-utils"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def other_busy_processes(own_pids: set[int]) -> list[str]:
    """Processes of other jobs using CPU right now (for the record: the machine is shared)."""
    import psutil

    procs = list(psutil.process_iter(["pid", "name", "cmdline"]))
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(1.0)
    busy = []
    for p in procs:
        try:
            cpu = p.cpu_percent(None)
            if cpu >= 20 and p.pid not in own_pids:
                cmd = " ".join(" ".join(p.info["cmdline"] or [p.info["name"] or "?"]).split())
                busy.append(f"{cpu:.0f}% {cmd[:140]}")
        except psutil.Error:
            pass
    return busy


# ----------------------------------------------------------------------------- measuring a child

def _cmdline(pid: int) -> str:
    import psutil

    try:
        return " ".join(psutil.Process(pid).cmdline())[:160]
    except psutil.Error:
        return "?"


class TreeMonitor(threading.Thread):
    """Polls the RSS of a process and all its descendants every POLL_S seconds."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        import psutil

        self.root = psutil.Process(pid)
        self.peak = 0
        self.peak_anon = 0  # RSS minus file-backed shared pages (memory-mapped weights)
        self.peak_at = 0.0
        self.max_procs = 1
        self.peak_parts: list = []  # (pid, rss[, command]) of every process at the peak
        self.timeline: list[tuple[float, float]] = []
        self.loads: list[float] = []
        self.started = time.perf_counter()
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        last_mark = -1e9
        while not self.stop.is_set():
            try:
                procs = [self.root] + self.root.children(recursive=True)
            except psutil.Error:
                break
            rss = anon = 0
            parts = []
            for p in procs:
                try:
                    m = p.memory_info()
                    rss += m.rss
                    anon += m.rss - m.shared
                    parts.append((p.pid, m.rss))
                except psutil.Error:
                    pass
            now = time.perf_counter() - self.started
            if rss > self.peak:
                self.peak, self.peak_at = rss, now
                if len(parts) > 1 or len(self.peak_parts) > 1:
                    self.peak_parts = [(pid, r, _cmdline(pid)) for pid, r in parts]
                else:
                    self.peak_parts = parts
            self.peak_anon = max(self.peak_anon, anon)
            self.max_procs = max(self.max_procs, len(procs))
            if now - last_mark >= 2.0:
                self.timeline.append((round(now, 1), round(rss / GB, 3)))
                self.loads.append(os.getloadavg()[0])
                last_mark = now
            self.stop.wait(POLL_S)


class LogPump(threading.Thread):
    """Copies a child's stdout+stderr to a log file, each line (tqdm's \\r updates too)
    prefixed with the seconds since the child started, so stages can be timed afterwards."""

    def __init__(self, stream, log_path: Path, started: float, echo: bool) -> None:
        super().__init__(daemon=True)
        self.stream, self.log_path, self.started, self.echo = stream, log_path, started, echo
        self.last_line = ""

    def run(self) -> None:
        # A line is stamped with the arrival of its first byte: tqdm starts each update with
        # "\r" and ends none, so the end of a segment is only seen at the next write.
        buf, buf_t = b"", 0.0
        with open(self.log_path, "w") as log:
            while True:
                chunk = self.stream.read1(65536) if hasattr(self.stream, "read1") else self.stream.read(65536)
                if not chunk:
                    break
                now = time.perf_counter() - self.started
                if not buf:
                    buf_t = now
                buf += chunk
                while True:
                    cut = min((i for i in (buf.find(b"\n"), buf.find(b"\r")) if i >= 0), default=-1)
                    if cut < 0:
                        break
                    line, buf = buf[:cut].decode(errors="replace"), buf[cut + 1:]
                    if line.strip():
                        log.write(f"[{buf_t:8.1f}s] {line}\n")
                        log.flush()
                        self.last_line = line.strip()
                        if self.echo:
                            print(f"    [{buf_t:7.1f}s] {line}", flush=True)
                    buf_t = now
                if buf.strip():  # an unfinished tqdm update: what the child shows right now
                    self.last_line = buf.decode(errors="replace").strip()
            if buf.strip():
                log.write(f"[{buf_t:8.1f}s] {buf.decode(errors='replace')}\n")


def run_measured(name: str, cmd: list[str], env: dict, log_path: Path, echo: bool, heartbeat_s: float = 60.0) -> dict:
    """Run cmd as a child, measure wall time, peak tree RSS, ru_maxrss, CPU time; return them."""
    load_before = load_average()
    print(f"[{name}] {' '.join(cmd)}", flush=True)
    print(f"[{name}] log: {log_path}; load average before: {load_before}", flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    monitor = TreeMonitor(proc.pid)
    monitor.started = started
    monitor.start()
    pump = LogPump(proc.stdout, log_path, started, echo)
    pump.start()
    result: dict = {}

    def wait() -> None:
        _, status, usage = os.wait4(proc.pid, 0)
        result.update(status=status, usage=usage, wall=time.perf_counter() - started)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    while waiter.is_alive():
        waiter.join(heartbeat_s)
        if waiter.is_alive():
            print(f"[{name}] {time.perf_counter() - started:7.0f}s  RSS peak {monitor.peak / GB:.2f} GB  "
                  f"load {load_average()[0]:.2f}  | {pump.last_line[-110:]}", flush=True)
    monitor.stop.set()
    monitor.join()
    pump.join()
    proc.returncode = os.waitstatus_to_exitcode(result["status"])  # keep Popen from waiting again
    usage = result["usage"]
    out = {
        "command": " ".join(cmd),
        "returncode": proc.returncode,
        "wall_s": round(result["wall"], 1),
        "cpu_user_s": round(usage.ru_utime, 1),
        "cpu_sys_s": round(usage.ru_stime, 1),
        "peak_rss_gb": round(monitor.peak / GB, 3),
        "peak_rss_at_s": round(monitor.peak_at, 1),
        "peak_rss_minus_shared_gb": round(monitor.peak_anon / GB, 3),
        # Linux reports ru_maxrss in KiB.
        "ru_maxrss_gb": round(usage.ru_maxrss * 1024 / GB, 3),
        "max_processes": monitor.max_procs,
        "processes_at_peak": [{"pid": p[0], "rss_gb": round(p[1] / GB, 3), **({"cmd": p[2]} if len(p) > 2 else {})}
                              for p in monitor.peak_parts],
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "load_average_1min_mean_during": round(sum(monitor.loads) / max(1, len(monitor.loads)), 2),
        "rss_timeline_gb": monitor.timeline,
        "log": str(log_path),
    }
    print(f"[{name}] exit {out['returncode']}; wall {out['wall_s']} s; CPU {out['cpu_user_s'] + out['cpu_sys_s']:.0f} s; "
          f"peak RSS {out['peak_rss_gb']:.2f} GB (at {out['peak_rss_at_s']} s); ru_maxrss {out['ru_maxrss_gb']:.2f} GB; "
          f"load after {out['load_average_after']}", flush=True)
    return out


# ----------------------------------------------------------------------------- the children

def child_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


def ours_command(model_dir: Path, calib: Path, out_dir: Path, samples: int) -> list[str]:
    """Our CLI, exactly as a user runs it; every option that matters is spelled out."""
    return [sys.executable, "-m", "qwen2vl_quant.cli", "gptq", "--bits", str(BITS), "--group-size", str(GROUP_SIZE),
            "--sym", "--damp", str(DAMP), "--calib", str(calib), "--num-samples", str(samples),
            "--device", "cpu", "--overwrite", str(model_dir), str(out_dir)]


def gptqmodel_command(model_dir: Path, calib: Path, out_dir: Path, samples: int, info: Path) -> list[str]:
    return [sys.executable, str(HERE), "--child", "gptqmodel", "--model-dir", str(model_dir), "--calib", str(calib),
            "--samples", str(samples), "--out", str(out_dir), "--info", str(info)]


def child_gptqmodel(args: argparse.Namespace) -> int:
    """GPTQModel's documented flow: GPTQModel.load(model, config); model.quantize(conversations,
    batch_size=1); model.save(out). Records its defaults and the stage times in --info."""
    t0 = time.perf_counter()
    from gptqmodel import GPTQModel
    from gptqmodel.quantization.config import GPTQConfig

    stages = {"import_s": time.perf_counter() - t0}
    default = GPTQConfig()
    fields = ("bits", "group_size", "sym", "desc_act", "act_group_aware", "damp_percent", "damp_auto_increment",
              "true_sequential", "static_groups", "mse", "offload_to_disk", "format", "method", "fallback")
    defaults = {f: str(getattr(default, f, None)) for f in fields}
    # sym, no act-order: desc_act off, and GPTQModel's own group-aware activation reordering
    # (act_group_aware, on by default for GPTQ) off too. Everything else is left at its default.
    config = GPTQConfig(bits=BITS, group_size=GROUP_SIZE, sym=SYM, desc_act=False, act_group_aware=False,
                        damp_percent=DAMP)
    used = {f: str(getattr(config, f, None)) for f in fields}
    conversations = read_jsonl(args.calib)[: args.samples]
    t = time.perf_counter()
    model = GPTQModel.load(str(args.model_dir), config)
    stages["load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    model.quantize(conversations, batch_size=1)
    stages["quantize_s"] = time.perf_counter() - t
    t = time.perf_counter()
    if args.out.exists():
        shutil.rmtree(args.out)
    model.save(str(args.out))
    stages["save_s"] = time.perf_counter() - t
    stages = {k: round(v, 1) for k, v in stages.items()}
    Path(args.info).write_text(json.dumps({"defaults": defaults, "used": used, "stages": stages,
                                           "samples": len(conversations)}, indent=1))
    print(f"GPTQModel stages: {stages}", flush=True)
    return 0


def child_eval(args: argparse.Namespace) -> int:
    """Relative error of the final hidden states of each checkpoint against the BF16 model."""
    import gc

    import torch
    from PIL import Image
    from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

    from qwen2vl_quant.loading import load_quantized
    from qwen2vl_quant.modules.quant_linear import GPTQLinear

    dtype = getattr(torch, args.eval_dtype)
    processor = AutoProcessor.from_pretrained(args.model_dir)
    inputs = []
    for conv in read_jsonl(args.heldout):
        text = processor.apply_chat_template(conv, tokenize=False, add_generation_prompt=False)
        images = [Image.open(_local(p)).convert("RGB") for p in image_paths([conv])]
        inputs.append(processor(text=[text], images=images, return_tensors="pt"))
    tokens = [int(x["input_ids"].numel()) for x in inputs]
    image_tokens = [int((x["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum()) for x in inputs]

    def cast(x):
        return {k: v.to(dtype) if v.is_floating_point() else v for k, v in x.items()}

    def final_hidden(model):
        outs = []
        with torch.inference_mode():
            for x in inputs:
                outs.append(model.model(**cast(x)).last_hidden_state.float())
        return outs

    def vision_fingerprint(model):
        # Float64 sums of every vision-tower parameter: equal iff kept bit for bit (practically).
        with torch.inference_mode():
            return torch.stack([torch.stack([p.double().sum(), p.double().abs().sum()])
                                for p in model.model.visual.parameters()])

    times = {}
    t = time.perf_counter()
    reference = Qwen2VLForConditionalGeneration.from_pretrained(args.model_dir, dtype=dtype).eval()
    times["reference_load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    want = final_hidden(reference)
    times["reference_forward_s"] = time.perf_counter() - t
    vision_ref = vision_fingerprint(reference)
    del reference
    gc.collect()

    results = {}
    for spec in args.checkpoint:
        name, path = spec.split("=", 1)
        t = time.perf_counter()
        model = load_quantized(path, dtype=dtype)
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        got = final_hidden(model)
        forward_s = time.perf_counter() - t
        num = sum(float((g - w).pow(2).sum()) for g, w in zip(got, want))
        den = sum(float(w.pow(2).sum()) for w in want)
        per_sample = [float((g - w).norm() / w.norm()) for g, w in zip(got, want)]
        quantized = sum(isinstance(m, GPTQLinear) for m in model.modules())
        vision_same = bool(torch.equal(vision_fingerprint(model), vision_ref))
        results[name] = {"rel_error": num ** 0.5 / den ** 0.5, "rel_error_per_sample": per_sample,
                         "quantized_linears": quantized, "vision_tower_identical": vision_same,
                         "qconfig": model.config.quantization_config, "load_s": round(load_s, 1),
                         "forward_s": round(forward_s, 1)}
        print(f"{name}: held-out rel. error {results[name]['rel_error']:.5f} "
              f"(per sample {', '.join(f'{e:.4f}' for e in per_sample)}); {quantized} GPTQ linears; "
              f"vision tower identical to BF16: {vision_same}", flush=True)
        del model, got
        gc.collect()
    Path(args.info).write_text(json.dumps({"dtype": args.eval_dtype, "samples": len(inputs), "tokens": tokens,
                                           "image_tokens": image_tokens, "times": {k: round(v, 1) for k, v in times.items()},
                                           "results": results}, indent=1))
    return 0


# ----------------------------------------------------------------------------- orchestration

def prepare_model(args: argparse.Namespace) -> Path:
    """The model: --model-dir if it holds one of this preset's shape, else built there (or in
    WORKDIR/model-PRESET) in a child process, so the parent stays small."""
    from qwen2vl_quant.tiny_model import PRESETS

    model_dir = args.model_dir or args.workdir / f"model-{args.preset}"
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        print(f"building the {args.preset} random-weight Qwen2-VL in {model_dir} ...", flush=True)
        t = time.perf_counter()
        code = ("import sys, logging; logging.basicConfig(level=logging.INFO);"
                "from qwen2vl_quant.tiny_model import build_tiny_qwen2vl;"
                "build_tiny_qwen2vl(sys.argv[1], preset=sys.argv[2])")
        subprocess.run([sys.executable, "-c", code, str(model_dir), args.preset], check=True, cwd=REPO, env=child_env())
        print(f"built in {time.perf_counter() - t:.0f} s", flush=True)
    text = json.loads(config_path.read_text())["text_config"]
    p = PRESETS[args.preset]
    got = (text["hidden_size"], text["num_hidden_layers"], text["intermediate_size"])
    if got != (p.hidden, p.layers, p.intermediate):
        raise SystemExit(f"{model_dir} has shapes {got}, not those of preset {args.preset}")
    return model_dir


def model_summary(model_dir: Path) -> dict:
    files = sorted(model_dir.glob("*.safetensors"))
    params = 0
    for f in files:  # safetensors: 8-byte little-endian header size, then a JSON header
        with open(f, "rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        for key, meta in header.items():
            if key != "__metadata__":
                n = 1
                for d in meta["shape"]:
                    n *= d
                params += n
    config = json.loads((model_dir / "config.json").read_text())
    text, vision = config["text_config"], config["vision_config"]
    return {"dir": str(model_dir), "bytes": sum(f.stat().st_size for f in files), "parameters": params,
            "hidden": text["hidden_size"], "layers": text["num_hidden_layers"],
            "intermediate": text["intermediate_size"], "vocab": text["vocab_size"],
            "vision_depth": vision["depth"], "vision_dim": vision["embed_dim"], "dtype": config.get("dtype")}


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def orchestrate(args: argparse.Namespace) -> int:
    args.workdir.mkdir(parents=True, exist_ok=True)
    results_stem = args.results or (RESULTS if args.preset == "2b-shapes" else args.workdir / "vs_gptqmodel")
    logs = args.workdir / "logs"
    logs.mkdir(exist_ok=True)
    machine = machine_info()
    machine["load_average_start"] = load_average()
    machine["other_busy_processes_start"] = other_busy_processes({os.getpid()})
    print(f"machine: {machine['cpu']}, {machine['cpu_cores']} cores, {machine['ram_gib']} GiB; "
          f"load average {machine['load_average_start']}; {machine['date']}", flush=True)
    for line in machine["other_busy_processes_start"]:
        print(f"  busy: {line}", flush=True)

    model_dir = prepare_model(args)
    calib = args.calib or make_calibration(args.workdir, args.samples)
    if len(read_jsonl(calib)) < args.samples:
        raise SystemExit(f"{calib} has fewer than {args.samples} conversations")
    held_out = make_held_out(args.workdir)
    disjoint = check_disjoint(calib, held_out)

    runs: dict = {}
    out_ours, out_theirs = args.workdir / "out-ours", args.workdir / "out-gptqmodel"
    gptqmodel_info = args.workdir / "gptqmodel_info.json"
    saved = args.workdir / "runs"  # each tool's measurement, saved as soon as it finishes
    saved.mkdir(exist_ok=True)
    # GPTQModel first, then ours: the order is fixed so that repeated runs compare alike.
    if not args.skip_gptqmodel:
        env = child_env({"GPTQMODEL_CPU_WORKERS": "2"})
        runs["gptqmodel"] = run_measured("gptqmodel", gptqmodel_command(model_dir, calib, out_theirs, args.samples,
                                                                          gptqmodel_info),
                                         env, logs / "gptqmodel.log", args.verbose)
        if gptqmodel_info.is_file():
            runs["gptqmodel"]["info"] = json.loads(gptqmodel_info.read_text())
        _save_run(saved / "gptqmodel.json", runs["gptqmodel"])
    if not args.skip_ours:
        staging = out_ours.parent / f".{out_ours.name}.partial"
        if staging.exists():  # a killed earlier run's staging: start from scratch, not resumed
            shutil.rmtree(staging)
        runs["ours"] = run_measured("ours", ours_command(model_dir, calib, out_ours, args.samples), child_env(),
                                    logs / "ours.log", args.verbose)
        report = out_ours / "quantization_report.json"
        if report.is_file():
            rep = json.loads(report.read_text())
            runs["ours"]["info"] = {"report_seconds": rep.get("seconds"), "calibration": rep.get("calibration"),
                                    "config": rep.get("config"), "stages": ours_stages(logs / "ours.log"),
                                    "memory_estimate": memory_estimate(model_dir, rep.get("calibration") or "")}
        _save_run(saved / "ours.json", runs["ours"])
    for name in args.reuse:
        if name in runs:
            raise SystemExit(f"--reuse {name}: that tool was run in this invocation")
        path = saved / f"{name}.json"
        if not path.is_file():
            raise SystemExit(f"--reuse {name}: no saved measurement at {path}")
        runs[name] = json.loads(path.read_text())
        runs[name]["reused_from"] = str(path)
        print(f"[{name}] reusing the measurement of an earlier invocation ({runs[name].get('finished')}): "
              f"wall {runs[name]['wall_s']} s, peak RSS {runs[name]['peak_rss_gb']} GB", flush=True)

    checkpoints = [f"{n}={d}" for n, d in (("gptqmodel", out_theirs), ("ours", out_ours))
                   if n in runs and runs[n]["returncode"] == 0]
    if args.eval_existing:
        checkpoints += [f"{n}={d}" for n, d in (("gptqmodel", out_theirs), ("ours", out_ours))
                        if n not in runs and (d / "config.json").is_file()]
    evaluation = None
    if checkpoints and not args.skip_eval:
        eval_info = args.workdir / "eval_info.json"
        cmd = [sys.executable, str(HERE), "--child", "eval", "--model-dir", str(model_dir), "--heldout", str(held_out),
               "--eval-dtype", args.eval_dtype, "--info", str(eval_info)]
        for c in checkpoints:
            cmd += ["--checkpoint", c]
        runs["eval"] = run_measured("eval", cmd, child_env(), logs / "eval.log", True)
        if runs["eval"]["returncode"] == 0:
            evaluation = json.loads(eval_info.read_text())

    for name, out in (("gptqmodel", out_theirs), ("ours", out_ours)):
        if name in runs and runs[name]["returncode"] == 0:
            runs[name]["checkpoint_bytes"] = dir_bytes(out)
    machine["load_average_end"] = load_average()
    machine["other_busy_processes_end"] = other_busy_processes({os.getpid()})
    machine["rusage_children_maxrss_gb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / GB, 3)
    summary = build_summary(args, machine, model_summary(model_dir), calib, held_out, disjoint, runs, evaluation)
    Path(f"{results_stem}.json").parent.mkdir(parents=True, exist_ok=True)
    Path(f"{results_stem}.json").write_text(json.dumps(summary, indent=1) + "\n")
    md = render_markdown(summary)
    Path(f"{results_stem}.md").write_text(md)
    print()
    print(md)
    print(f"wrote {results_stem}.md and {results_stem}.json")
    return 0 if all(r["returncode"] == 0 for r in runs.values()) else 1


def memory_estimate(model_dir: Path, calibration: str) -> dict | None:
    """What qwen2vl_quant.memory predicts for this model and calibration token count (from the
    report's "N text, N image and N video tokens"), to set against the measured peak."""
    import re

    counts = re.findall(r"(\d+) (?:text|image|video)", calibration)
    if not counts:
        return None
    from transformers import Qwen2VLConfig

    from qwen2vl_quant.memory import estimate

    tokens = sum(int(n) for n in counts)
    e = estimate(Qwen2VLConfig.from_pretrained(model_dir), tokens)
    return {"tokens": tokens, "capture_gb": round(e.capture_bytes / GB, 3), "layer_gb": round(e.layer_bytes / GB, 3),
            "peak_gb": round(e.peak_bytes / GB, 3)}


def _save_run(path: Path, run: dict) -> None:
    run["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    path.write_text(json.dumps(run, indent=1) + "\n")


def ours_stages(log_path: Path) -> dict:
    """Stage times of our CLI, from the timestamps of its progress output (the log pump
    stamps every tqdm update): start-up, reading + processing the calibration set, layer-0
    capture, then per decoder layer the "load" and "quantize" stages of the progress bar's
    postfix, and the final writing. (Its "layer N done in X s" log line is the time since the
    layer loop started, cumulative, so per-layer times are taken from the stamps instead.)"""
    import re

    stamped = []
    for line in log_path.read_text().splitlines():
        m = re.match(r"\[\s*([\d.]+)s\] (.*)", line)
        if m:
            stamped.append((float(m.group(1)), m.group(2)))
    if not stamped:
        return {}
    first = {}
    layers: dict[int, dict[str, float]] = {}
    for t, text in stamped:
        for key, pattern in (("banner", r"^GPTQ \d-bit"), ("calibration", r"^calibration: "),
                             ("capture_start", r"capture layer-0 inputs"), ("loop_start", r"^quantize:"),
                             ("wrote", r"^wrote ")):
            if key not in first and re.search(pattern, text):
                first[key] = t
        for m in re.finditer(r"layer (\d+): (load|quantize|outputs|worst err)", text):
            layers.setdefault(int(m.group(1)), {}).setdefault(m.group(2), t)
    per_layer = []
    for index in sorted(layers):
        st = layers[index]
        end_t = st.get("worst err")
        q = st.get("quantize")
        per_layer.append({"layer": index,
                          "load_s": round(q - st["load"], 1) if q is not None and "load" in st else None,
                          "quantize_s": round(end_t - q, 1) if end_t is not None and q is not None else None,
                          "total_s": round(end_t - st["load"], 1) if end_t is not None and "load" in st else None})
    done = [r for r in per_layer if r["total_s"] is not None]
    last_done = max((layers[r["layer"]]["worst err"] for r in done), default=None)

    def total(key):
        return round(sum(r[key] or 0 for r in done), 1)

    return {
        "startup_s": first.get("banner"),
        "calibration_processing_s": round(first["calibration"] - first["banner"], 1)
        if "calibration" in first and "banner" in first else None,
        "capture_s": round(first["loop_start"] - first["capture_start"], 1)
        if "loop_start" in first and "capture_start" in first else None,
        "layers_done": len(done), "layers_s": total("total_s"), "layers_load_s": total("load_s"),
        "layers_quantize_s": total("quantize_s"),
        "layer_s_min": min((r["total_s"] for r in done), default=None),
        "layer_s_max": max((r["total_s"] for r in done), default=None),
        "write_s": round(first["wrote"] - last_done, 1) if "wrote" in first and last_done is not None else None,
        "end_s": stamped[-1][0], "per_layer": per_layer,
    }


def build_summary(args, machine, model, calib, held_out, disjoint, runs, evaluation) -> dict:
    rows = {}
    for name in ("ours", "gptqmodel"):
        if name not in runs:
            continue
        r = runs[name]
        err = evaluation["results"].get(name, {}).get("rel_error") if evaluation else None
        rows[name] = {"wall_s": r["wall_s"], "cpu_s": round(r["cpu_user_s"] + r["cpu_sys_s"], 1),
                      "peak_rss_gb": r["peak_rss_gb"], "ru_maxrss_gb": r["ru_maxrss_gb"], "rel_error": err,
                      "returncode": r["returncode"], "load_1min_mean": r["load_average_1min_mean_during"]}
    ratios = {}
    if "ours" in rows and "gptqmodel" in rows:
        o, g = rows["ours"], rows["gptqmodel"]
        ratios = {"wall": ratio(o["wall_s"], g["wall_s"]), "cpu": ratio(o["cpu_s"], g["cpu_s"]),
                  "rss": ratio(o["peak_rss_gb"], g["peak_rss_gb"]),
                  "ru_maxrss": ratio(o["ru_maxrss_gb"], g["ru_maxrss_gb"]),
                  "error": ratio(o["rel_error"], g["rel_error"])}
    if "ours" in rows:
        ratios["wall_vs_issue_reference"] = ratio(rows["ours"]["wall_s"], ISSUE_REFERENCE["wall_s"])
        ratios["rss_vs_issue_reference"] = ratio(rows["ours"]["peak_rss_gb"], ISSUE_REFERENCE["peak_rss_gb"])
    command = " ".join([Path(sys.executable).relative_to(REPO).as_posix() if str(sys.executable).startswith(str(REPO))
                        else sys.executable, str(HERE.relative_to(REPO)), *sys.argv[1:]])
    return {"command": command, "machine": machine, "model": model, "preset": args.preset,
            "settings": {"bits": BITS, "group_size": GROUP_SIZE, "sym": SYM, "act_order": False, "damp_percent": DAMP,
                         "samples": args.samples, "calibration": str(calib), "held_out": str(held_out),
                         "held_out_disjoint": disjoint, "eval_dtype": args.eval_dtype},
            "rows": rows, "ratios": ratios, "targets": TARGETS, "issue_reference": ISSUE_REFERENCE,
            "runs": runs, "evaluation": evaluation}


def _f(x, fmt):
    return "n/a" if x is None else format(x, fmt)


def render_markdown(s: dict) -> str:
    m, rows, ratios = s["machine"], s["rows"], s["ratios"]
    shapes = "the Qwen2-VL-2B shapes" if s["preset"] == "2b-shapes" else f"the {s['preset']} test model"
    lines = [f"# qwen2vl-quant vs GPTQModel: GPTQ Int4 on {shapes}", "",
             f"`{s['command']}`", "",
             (f"Model: random-weight Qwen2-VL, preset `{s['preset']}` (hidden {s['model']['hidden']}, "
             f"{s['model']['layers']} layers, intermediate {s['model']['intermediate']}, vocab {s['model']['vocab']}, "
             f"vision depth {s['model']['vision_depth']} x {s['model']['vision_dim']}; "
             f"{s['model']['parameters'] / 1e9:.3g} B parameters, "
             f"{s['model']['bytes'] / GB:.2f} GB {s['model']['dtype']}). "
             f"Calibration: {s['settings']['samples']} image conversations (`{s['settings']['calibration']}`). "
             f"GPTQ Int4, group 128, sym, no act-order, damp 0.01 for both."), "",
             "| tool | wall s | CPU s | peak RSS GB | ru_maxrss GB | held-out rel. error | mean 1-min load during run |",
             "|---|---|---|---|---|---|---|"]
    names = {"ours": "qwen2vl-quant (ours)", "gptqmodel": f"GPTQModel {m['versions'].get('gptqmodel')}"}
    for k in ("ours", "gptqmodel"):
        if k in rows:
            r = rows[k]
            fail = "" if r["returncode"] == 0 else f" (exit {r['returncode']})"
            fail += " (reused, see below)" if s["runs"][k].get("reused_from") else ""
            lines.append(f"| {names[k]}{fail} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | {r['peak_rss_gb']:.2f} | "
                         f"{r['ru_maxrss_gb']:.2f} | {_f(r['rel_error'], '.5f')} | {r['load_1min_mean']:.2f} |")
    lines.append("")
    for k in ("ours", "gptqmodel"):
        run = s["runs"].get(k, {})
        if run.get("reused_from"):
            lines += [(f"*Reused row* ({names[k]}): measured by an earlier invocation (finished {run.get('finished')}), "
                      f"not in this one (`--reuse {k}`). {run.get('reuse_note', '')}"), ""]
    if "wall" in ratios:
        def verdict(key, value):
            return "n/a" if value is None else ("met" if value <= TARGETS[key] else "NOT met")

        lines += ["| ours / GPTQModel | measured | issue 6 target | |", "|---|---|---|---|",
                  f"| wall time | {_f(ratios['wall'], '.3f')} | <= {TARGETS['wall']} | {verdict('wall', ratios['wall'])} |",
                  (f"| peak RSS (psutil tree) | {_f(ratios['rss'], '.3f')} | <= {TARGETS['rss']} | "
                  f"{verdict('rss', ratios['rss'])} |"),
                  (f"| held-out error | {_f(ratios['error'], '.3f')} | <= {TARGETS['error']} | "
                  f"{verdict('error', ratios['error'])} |"),
                  f"| CPU time (not a target) | {_f(ratios['cpu'], '.3f')} | | |",
                  f"| ru_maxrss (not the target figure) | {_f(ratios['ru_maxrss'], '.3f')} | | |", ""]
    ref = s["issue_reference"]
    if "wall_vs_issue_reference" in ratios:
        lines += [(f"Against the issue's reference measurement of GPTQModel ({ref['wall_s']:.0f} s, "
                  f"{ref['peak_rss_gb']} GB): ours is {_f(ratios['wall_vs_issue_reference'], '.3f')}x the wall time "
                  f"and {_f(ratios['rss_vs_issue_reference'], '.3f')}x the peak RSS."), ""]
    lines += ["## How it was measured", "",
              ("- Each tool runs alone in its own child process, GPTQModel first, then ours, then a third child "
              "evaluates both checkpoints. **wall s**: spawn to exit of the child (imports, loading, calibration, "
              "quantization, writing). **peak RSS**: the largest sum of the RSS of the child and all its descendants, "
              f"polled with psutil every {POLL_S} s (the figure used for the ratio). **ru_maxrss**: from `os.wait4` on "
              "that child (kernel-exact peak of the largest single process; equals `getrusage(RUSAGE_CHILDREN)` for a "
              "parent with that one child; both tools ran as one process, so it is comparable). RSS includes "
              "file-backed pages of memory-mapped safetensors. **CPU s**: user + system time of the child tree."),
              (f"- **Held-out rel. error**: {s['evaluation']['samples'] if s['evaluation'] else 'n/a'} image+text "
              "conversations generated by this script with another seed (no image or text shared with the "
              "calibration set, checked by content hash), processed once with the model's processor. For each, the "
              "final-layer hidden state (after the final RMSNorm) of the quantized model vs the BF16 model; "
              "||h_q - h_bf16|| / ||h_bf16|| pooled over all tokens of all samples. Every model computes in "
              f"**{s['settings']['eval_dtype']}** (BF16 weights upcast exactly), so the error is the quantization's, "
              "not bf16 rounding. The BF16 model is loaded with transformers, both quantized checkpoints with our "
              "`load_quantized` (GPTQ v1 reader)."),
              ]
    gi = s["runs"].get("gptqmodel", {}).get("info")
    if gi:
        lines += ["- **GPTQModel settings**: defaults of `gptqmodel.quantization.config.GPTQConfig()`: "
                  + ", ".join(f"{k}={v}" for k, v in gi["defaults"].items())
                  + ". Set here: bits=4, group_size=128, sym=True, desc_act=False, act_group_aware=False (its "
                  "group-aware activation reordering, on by default, is a form of act-order), damp_percent=0.01; the "
                  "rest left at the defaults (damp_auto_increment, true_sequential, offload_to_disk, fallback, ...). "
                  "Flow: `GPTQModel.load(model_dir, config)`, `model.quantize(conversations, batch_size=1)` (its "
                  "Qwen2-VL definition applies the chat template with add_generation_prompt=True and reads the images "
                  "itself; qwen-vl-utils is not used for Qwen2-VL images), `model.save(out)`; "
                  "`GPTQMODEL_CPU_WORKERS=2`. Stage times (s): "
                  + ", ".join(f"{k} {v}" for k, v in gi["stages"].items()) + "."]
    oi = s["runs"].get("ours", {}).get("info")
    if oi:
        st = oi["stages"]
        lines += [("- **qwen2vl-quant settings**: our CLI (command in the JSON). Its defaults: group 128, sym, no "
                  "act-order, damp 0.01 (auto-increment 0.0025), block 128, true-sequential, --num-samples 128, "
                  "--max-pixels 512*28*28 (the 448x336 images, 192 visual tokens each, are not resized by either "
                  "tool). Set here: --bits 4 --group-size 128 --sym --damp 0.01 --num-samples "
                  f"{s['settings']['samples']} --device cpu. Stages, from the time stamps of its progress output: "
                  f"start-up {st.get('startup_s')} s, calibration set read and processed {st.get('calibration_processing_s')} s, "
                  f"layer-0 capture {st.get('capture_s')} s, {st.get('layers_done')} layers {st.get('layers_s')} s "
                  f"(stage 'load' {st.get('layers_load_s')} s, stage 'quantize' {st.get('layers_quantize_s')} s; "
                  f"{st.get('layer_s_min')} to {st.get('layer_s_max')} s per layer), writing the output "
                  f"{st.get('write_s')} s (per-layer times in the JSON).")]
        est = oi.get("memory_estimate")
        if est:
            lines += [(f"- **Memory estimate** (`qwen2vl_quant.memory.estimate`, {est['tokens']} calibration tokens): "
                      f"capture stage {est['capture_gb']:.2f} GB, layer stage {est['layer_gb']:.2f} GB, peak "
                      f"{est['peak_gb']:.2f} GB, against the measured peak RSS above.")]
    lines += ["", "## Machine", "",
              (f"- {m['cpu']}, {m['cpu_cores']} cores ({m['cpu_cores_usable']} usable), {m['ram_gib']} GiB RAM; "
              f"{m['os']}; Python {m['python']}; flags {', '.join(m['cpu_flags'])}"),
              f"- date (UTC): {m['date']}; git {m['git_commit']} ({m['git_dirty_files']} files modified/untracked)",
              f"- load average (1, 5, 15 min): start {m['load_average_start']}, end {m['load_average_end']}"]
    for k in ("gptqmodel", "ours", "eval"):
        if k in s["runs"]:
            r = s["runs"][k]
            lines.append(f"  - {k}: before {r['load_average_before']}, after {r['load_average_after']}, "
                         f"mean 1-min load during {r['load_average_1min_mean_during']}")
    if m.get("other_busy_processes_start"):
        lines.append("- other jobs busy on the CPU at the start (the machine is shared; on 2 cores a load average "
                     "above 2 means the tools got only part of the CPU):")
        lines += [f"  - {p}" for p in m["other_busy_processes_start"]]
    lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v))
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="2b-shapes", choices=("2b-shapes", "small"),
                        help="model shapes: 2b-shapes (real Qwen2-VL-2B) or small (quick smoke run)")
    parser.add_argument("--samples", type=int, default=16, help="calibration conversations")
    parser.add_argument("--workdir", type=Path, default=None, help="default /tmp/vs_gptqmodel-PRESET")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="reuse this model directory (built there if it has no config.json)")
    parser.add_argument("--calib", type=Path, default=None, help="reuse this .jsonl calibration set (else generated)")
    parser.add_argument("--skip-gptqmodel", action="store_true")
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--reuse", action="append", default=[], choices=("gptqmodel", "ours"),
                        help="take this tool's measurement from WORKDIR/runs/NAME.json, saved by an earlier invocation "
                        "(e.g. one killed after that tool finished), instead of running it again; marked in the table")
    parser.add_argument("--eval-existing", action="store_true",
                        help="also evaluate checkpoints left in WORKDIR by an earlier run of a skipped tool")
    parser.add_argument("--eval-dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--results", type=Path, default=None, help="output path stem (.md and .json are added)")
    parser.add_argument("-v", "--verbose", action="store_true", help="echo the tools' output lines")
    # Internal: the child processes.
    parser.add_argument("--child", choices=("gptqmodel", "eval"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--info", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--heldout", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "gptqmodel":
        return child_gptqmodel(args)
    if args.child == "eval":
        return child_eval(args)
    args.workdir = args.workdir or Path(f"/tmp/vs_gptqmodel-{args.preset}")
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
