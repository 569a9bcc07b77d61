"""Writing checkpoints: size-capped safetensors shards plus the index, into the staging
directory that output_dir.py publishes when complete."""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..errors import ConfigError
from .output_dir import write_json
from .safetensors_io import StoredTensor, write_from_stored

INDEX_FILE = "model.safetensors.index.json"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B)?\s*$", re.IGNORECASE)
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(text: str | int) -> int:
    """'4GB' -> 4_000_000_000 (decimal units as transformers uses; KiB/MiB/GiB binary)."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise ConfigError(f"cannot read size {text!r}; write it like 4GB, 500MB or 2GiB")
    value = float(match.group(1)) * _UNITS[(match.group(2) or "B").upper()]
    if value < 1:
        raise ConfigError(f"size {text!r} must be positive")
    return int(value)


def tensor_bytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def plan_shards(sizes: dict[str, int], max_shard_bytes: int) -> list[list[str]]:
    """Greedy split of keys (in sorted order, for determinism) into shards under the cap.

    A tensor larger than the cap gets a shard of its own, as transformers does.
    """
    shards: list[list[str]] = [[]]
    used = 0
    for key in sorted(sizes):
        if shards[-1] and used + sizes[key] > max_shard_bytes:
            shards.append([])
            used = 0
        shards[-1].append(key)
        used += sizes[key]
    return shards


def shard_name(number: int, total: int) -> str:
    return f"model-{number:05d}-of-{total:05d}.safetensors"


def write_shards(directory: Path, tensors: dict[str, torch.Tensor], max_shard_bytes: int) -> dict:
    """Shards of in-memory tensors (``save_quantized``) plus the index."""
    plan = plan_shards({k: tensor_bytes(t) for k, t in tensors.items()}, max_shard_bytes)
    weight_map: dict[str, str] = {}
    for number, keys in enumerate(plan, start=1):
        filename = shard_name(number, len(plan))
        save_file({k: tensors[k].contiguous() for k in keys}, str(directory / filename), metadata={"format": "pt"})
        _make_readable(directory / filename)
        weight_map.update({key: filename for key in keys})
    return _write_index(directory, weight_map, sum(tensor_bytes(t) for t in tensors.values()))


def write_shards_from_stored(directory: Path, stored: dict[str, StoredTensor], max_shard_bytes: int) -> dict:
    """Shards assembled by copying tensors' bytes out of other safetensors files (streamed
    runs): memory stays at one copy chunk whatever the shard size."""
    plan = plan_shards({k: s.nbytes for k, s in stored.items()}, max_shard_bytes)
    weight_map: dict[str, str] = {}
    for number, keys in enumerate(plan, start=1):
        filename = shard_name(number, len(plan))
        write_from_stored(directory / filename, {k: stored[k] for k in keys})
        _make_readable(directory / filename)
        weight_map.update({key: filename for key in keys})
    return _write_index(directory, weight_map, sum(s.nbytes for s in stored.values()))


def _write_index(directory: Path, weight_map: dict[str, str], total_size: int) -> dict:
    index = {"metadata": {"total_size": total_size}, "weight_map": dict(sorted(weight_map.items()))}
    write_json(directory / INDEX_FILE, index)
    return index


def _make_readable(path: Path) -> None:
    # safetensors creates files as 0600; checkpoints are meant to be shared like the
    # other files of the directory, so apply the usual umask-derived mode.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
