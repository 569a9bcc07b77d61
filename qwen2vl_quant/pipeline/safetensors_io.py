"""Reading safetensors headers and writing shards by copying byte ranges.

The streamed output is assembled from tensors that already sit in safetensors files (the
input shards and the finished-layer files), so a shard is written by copying byte ranges
in fixed-size chunks: memory stays at one chunk however large the shard or the tensor,
and untouched tensors are copied byte for byte by construction.
Format: https://github.com/huggingface/safetensors#format (8-byte little-endian header
length, JSON header with dtype/shape/data_offsets relative to the data start, data).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

COPY_CHUNK = 64 * 2**20
_ALIGN = 8


@dataclass(frozen=True)
class StoredTensor:
    """Where one tensor's bytes are: file, absolute byte range, dtype and shape."""

    path: Path
    key: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start


def read_header(path: Path) -> dict[str, StoredTensor]:
    """Every tensor of a safetensors file, from its header alone."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    data_start = 8 + length
    return {
        key: StoredTensor(path, key, info["dtype"], tuple(info["shape"]),
                          data_start + info["data_offsets"][0], data_start + info["data_offsets"][1])
        for key, info in header.items()
        if key != "__metadata__"
    }


def write_from_stored(path: Path, tensors: dict[str, StoredTensor]) -> None:
    """Write a safetensors file holding ``tensors`` (output key -> stored bytes), keys sorted."""
    header: dict[str, dict] = {"__metadata__": {"format": "pt"}}
    offset = 0
    keys = sorted(tensors)
    for key in keys:
        stored = tensors[key]
        header[key] = {"dtype": stored.dtype, "shape": list(stored.shape), "data_offsets": [offset, offset + stored.nbytes]}
        offset += stored.nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % _ALIGN)  # the data must start 8-byte aligned
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(encoded)))
        out.write(encoded)
        for key in keys:
            _copy_range(tensors[key], out)


def _copy_range(stored: StoredTensor, out) -> None:
    with open(stored.path, "rb") as source:
        source.seek(stored.start)
        remaining = stored.nbytes
        while remaining:
            chunk = source.read(min(COPY_CHUNK, remaining))
            if not chunk:
                raise OSError(f"{stored.path} ends before tensor {stored.key} does")
            out.write(chunk)
            remaining -= len(chunk)
