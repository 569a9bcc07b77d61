"""Tensor-at-a-time access to a model directory's safetensors files.

Nothing here loads a whole model: tensors are read one by one from the shards, so the
pipeline can stream a 72B checkpoint through a machine with a fraction of its size in RAM.

Tensors are read with plain positioned reads into a fresh buffer, not through a memory map
(safetensors' ``safe_open``): every page of a mapped file that has been touched stays in the
process's resident set for as long as the map is open, so reading a 2B model layer by
layer through one map made the resident memory grow by a layer (~0.1 GB) per layer and
kept the vision tower's pages after it was released. Read pages stay in the page cache,
which the kernel can drop, and out of our footprint.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch

from ..arch import ArchSpec
from ..errors import ModelLoadError
from .safetensors_io import StoredTensor, read_header

# safetensors dtype names (https://github.com/huggingface/safetensors#format)
DTYPES = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16, "U16": torch.uint16,
    "I32": torch.int32, "U32": torch.uint32, "I64": torch.int64, "U64": torch.uint64,
    "F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


class CheckpointReader:
    """Maps every tensor key of a (sharded or single-file) safetensors checkpoint to its file."""

    def __init__(self, model_dir: str | Path, spec: ArchSpec) -> None:
        self.model_dir = Path(model_dir)
        self.spec = spec
        self._headers: dict[str, dict[str, StoredTensor]] = {}
        self._files: dict[str, int] = {}  # open file descriptors, for os.pread
        self.key_to_file = self._index()
        self.legacy_keys = spec.uses_legacy_keys(self.key_to_file)
        # transformers-5 parameter name -> key as stored in this checkpoint
        self.key_of = {spec.module_name_for_key(k): k for k in self.key_to_file}

    def _index(self) -> dict[str, str]:
        index_path = self.model_dir / INDEX_FILE
        if index_path.is_file():
            try:
                weight_map = json.loads(index_path.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ModelLoadError(f"{index_path} is not a valid safetensors index: {exc}") from exc
            missing = sorted({f for f in weight_map.values() if not (self.model_dir / f).is_file()})
            if missing:
                raise ModelLoadError(f"{self.model_dir}: shard files listed in the index are missing: {', '.join(missing)}")
            return dict(weight_map)
        single = self.model_dir / SINGLE_FILE
        if single.is_file():
            return {key: SINGLE_FILE for key in self._header(SINGLE_FILE)}
        if any(self.model_dir.glob("*.bin")):
            raise ModelLoadError(
                f"{self.model_dir} has only PyTorch .bin weights; convert them to safetensors first "
                "(load with transformers and save_pretrained)"
            )
        raise ModelLoadError(f"{self.model_dir} has no model.safetensors or {INDEX_FILE}")

    def _header(self, filename: str) -> dict[str, StoredTensor]:
        if filename not in self._headers:
            path = self.model_dir / filename
            try:
                header = read_header(path)
            except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error) as exc:
                raise ModelLoadError(f"cannot read weights {path}: not a safetensors file ({exc})") from exc
            size = path.stat().st_size
            for stored in header.values():
                if stored.dtype not in DTYPES:
                    raise ModelLoadError(f"{path}: tensor {stored.key} has unsupported dtype {stored.dtype}")
                if stored.end > size:
                    raise ModelLoadError(f"{path} is truncated: tensor {stored.key} ends past the end of the file")
            self._headers[filename] = header
        return self._headers[filename]

    def _read(self, filename: str, stored: StoredTensor) -> torch.Tensor:
        if filename not in self._files:
            self._files[filename] = os.open(self.model_dir / filename, os.O_RDONLY)
        fd = self._files[filename]
        buffer = torch.empty(stored.nbytes, dtype=torch.uint8)
        view = memoryview(buffer.numpy())
        done = 0
        while done < stored.nbytes:  # pread may return fewer bytes than asked
            count = os.preadv(fd, [view[done:]], stored.start + done)
            if count <= 0:
                raise OSError(f"{filename} ends before tensor {stored.key} does")
            done += count
        return buffer.view(DTYPES[stored.dtype]).reshape(stored.shape)

    def names(self) -> list[str]:
        """All tensors as transformers-5 parameter names."""
        return list(self.key_of)

    def _locate(self, name: str) -> tuple[str, StoredTensor]:
        """(shard file name, where its bytes are) of a tensor by transformers-5 parameter name."""
        key = self.key_of.get(name)
        if key is None:
            raise ModelLoadError(f"{self.model_dir}: the checkpoint has no tensor for {name}")
        filename = self.key_to_file[key]
        stored = self._header(filename).get(key)
        if stored is None:
            raise ModelLoadError(f"{self.model_dir / filename} has no tensor {key} (the index says it does)")
        return filename, stored

    def get(self, name: str) -> torch.Tensor:
        """One tensor by transformers-5 parameter name, read from its shard into new memory."""
        filename, stored = self._locate(name)
        try:
            return self._read(filename, stored)
        except OSError as exc:
            raise ModelLoadError(f"{self.model_dir}: cannot read tensor {stored.key}: {exc}") from exc

    def get_rows(self, name: str, rows: torch.Tensor) -> torch.Tensor:
        """Rows ``rows`` (int tensor) of a 2-D tensor, each read on its own: the rows of an
        embedding table that a calibration set uses, without the whole table."""
        filename, stored = self._locate(name)
        if len(stored.shape) != 2:
            raise ValueError(f"{name} is not a matrix: {stored.shape}")
        count, width = stored.shape
        row_bytes = stored.nbytes // count
        out = torch.empty((rows.numel(), width), dtype=DTYPES[stored.dtype])
        for i, row in enumerate(rows.tolist()):
            if not 0 <= row < count:
                raise IndexError(f"row {row} of {name} is out of range ({count} rows)")
            start = stored.start + row * row_bytes
            one = StoredTensor(stored.path, stored.key, stored.dtype, (width,), start, start + row_bytes)
            out[i] = self._read(filename, one)
        return out

    def get_prefix(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors under a module prefix, keyed relative to it (for load_state_dict)."""
        start = prefix + "."
        return {name[len(start) :]: self.get(name) for name in self.key_of if name.startswith(start)}

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()
