"""Memory-mapped, tensor-at-a-time access to a model directory's safetensors files.

Nothing here loads a whole model: tensors are read one by one from the shards, so the
pipeline can stream a 72B checkpoint through a machine with a fraction of its size in RAM.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from ..arch import module_name_for_key, uses_legacy_keys
from ..errors import ModelLoadError

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


class CheckpointReader:
    """Maps every tensor key of a (sharded or single-file) safetensors checkpoint to its file."""

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = Path(model_dir)
        self.key_to_file = self._index()
        self.legacy_keys = uses_legacy_keys(self.key_to_file)
        # transformers-5 parameter name -> key as stored in this checkpoint
        self.key_of = {module_name_for_key(k): k for k in self.key_to_file}
        self._handles: dict[str, object] = {}

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
            with self._open(SINGLE_FILE) as handle:
                return {key: SINGLE_FILE for key in handle.keys()}
        if any(self.model_dir.glob("*.bin")):
            raise ModelLoadError(
                f"{self.model_dir} has only PyTorch .bin weights; convert them to safetensors first "
                "(load with transformers and save_pretrained)"
            )
        raise ModelLoadError(f"{self.model_dir} has no model.safetensors or {INDEX_FILE}")

    def _open(self, filename: str):
        try:
            return safe_open(str(self.model_dir / filename), framework="pt", device="cpu")
        except (SafetensorError, OSError) as exc:
            raise ModelLoadError(f"cannot read weights {self.model_dir / filename}: {exc}") from exc

    def _handle(self, filename: str):
        if filename not in self._handles:
            self._handles[filename] = self._open(filename).__enter__()
        return self._handles[filename]

    def names(self) -> list[str]:
        """All tensors as transformers-5 parameter names."""
        return list(self.key_of)

    def get(self, name: str) -> torch.Tensor:
        """One tensor by transformers-5 parameter name, read from its memory-mapped shard."""
        key = self.key_of.get(name)
        if key is None:
            raise ModelLoadError(f"{self.model_dir}: the checkpoint has no tensor for {name}")
        try:
            return self._handle(self.key_to_file[key]).get_tensor(key)
        except (SafetensorError, OSError) as exc:
            raise ModelLoadError(f"{self.model_dir}: cannot read tensor {key}: {exc}") from exc

    def get_prefix(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors under a module prefix, keyed relative to it (for load_state_dict)."""
        start = prefix + "."
        return {name[len(start) :]: self.get(name) for name in self.key_of if name.startswith(start)}

    def file_of(self, name: str) -> Path:
        return self.model_dir / self.key_to_file[self.key_of[name]]

    def close(self) -> None:
        for handle in self._handles.values():
            handle.__exit__(None, None, None)
        self._handles.clear()

