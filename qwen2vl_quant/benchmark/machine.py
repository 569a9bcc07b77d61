"""What a benchmark ran on: machine, device, library versions, git commit.

Every table we write carries this block, because a tokens/s figure means nothing without
the hardware and software it was measured on (the Qwen2-VL README lists GPU, CUDA,
PyTorch, Flash Attention, Transformers, AutoGPTQ and AutoAWQ versions above its tables).
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from ..kernels.cpu_info import cpu_model

# Distributions whose versions change the numbers (quantized loaders, attention kernels).
LIBRARIES = ("torch", "transformers", "triton", "accelerate", "optimum", "gptqmodel", "flash-attn", "safetensors",
             "tokenizers", "qwen2vl-quant")
GIB = 1024**3


def machine_info(device: str | torch.device | None = None) -> dict[str, Any]:
    """A JSON-ready description of this machine and software; ``device`` is the one measured."""
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_gib": round(ram_bytes() / GIB, 1) if ram_bytes() else None,
        "load_average": _load_average(),
        "device": str(device) if device is not None else None,
        "gpus": gpus(),
        "cuda": torch.version.cuda,
        "versions": library_versions(),
        "git_commit": git_commit(),
    }
    return info


def ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def gpus() -> list[dict[str, Any]]:
    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        out.append({"index": i, "name": props.name, "memory_gib": round(props.total_memory / GIB, 1),
                    "capability": f"{props.major}.{props.minor}"})
    return out


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """HEAD of the checkout this package runs from, with "-dirty" if it has local changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def describe(info: dict[str, Any]) -> list[str]:
    """Markdown lines for the top of a results file."""
    lines = []
    cores = info.get("cpu_cores")
    usable = info.get("cpu_cores_usable")
    cpu = f"{info.get('cpu')}, {cores} cores" + (f" ({usable} usable)" if usable and usable != cores else "")
    cpu += f", torch threads {info.get('torch_threads')}, {info.get('ram_gib')} GiB RAM"
    lines.append(f"- Machine: {cpu}")
    if info.get("gpus"):
        names = ", ".join(f"{g['name']} ({g['memory_gib']} GiB)" for g in info["gpus"])
        lines.append(f"- GPUs: {names}; CUDA {info.get('cuda')}")
    else:
        lines.append("- GPUs: none")
    lines.append(f"- Device measured: {info.get('device')}")
    load = info.get("load_average")
    if load and cores:
        end = info.get("load_average_end")
        peak = max(load[0], end[0] if end else 0.0)
        busy = " (the CPU was shared with other jobs: timings are noisy)" if peak > 0.5 * cores else ""
        after = f", at the end {end[0]:.2f}" if end else ""
        lines.append(f"- Load average (1 min) at start {load[0]:.2f}{after}{busy}")
    versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items() if v)
    lines.append(f"- Software: Python {info.get('python')}, {versions}")
    lines.append(f"- Git commit: {info.get('git_commit') or 'unknown (not a git checkout)'}; date {info.get('date')}")
    return lines


def current_rss_bytes() -> int | None:
    """Resident memory of this process now (Linux /proc), None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int | None:
    """Peak resident memory of this process so far (getrusage; kB on Linux, bytes on macOS)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
