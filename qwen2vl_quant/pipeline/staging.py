"""The staging directory of a streaming run: finished layers and the state to resume from.

Layout of ``.OUT.partial/``:
    state.json              fingerprint of the run, layers finished and in all, whether the
                            calibration inputs were captured (written last)
    captured.pt             per-sample keyword arguments of the decoder layers (once)
    activations.pt          hidden states entering the next unfinished layer
    layers/layer_00012.safetensors   every tensor of finished layer 12, checkpoint keys
    report.json             per-Linear reports of the finished layers
Each file is written to a temporary name and renamed, and state.json last, so a run killed
at any point resumes from the last layer whose files are all complete.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ..errors import OutputError
from .capture import DeepStack, LayerInputs
from .output_dir import STATE_FILE, has_resumable_work, write_json


class Staging:
    def __init__(self, path: Path, fingerprint: str, total_layers: int) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.total_layers = total_layers
        self.layers_dir = path / "layers"
        self.captured = False

    def start(self, resume: bool) -> int:
        """Prepare the directory; returns how many layers are already finished (resume).

        Whether a partial folder may be resumed or replaced was checked before any work
        (output_dir.check_partial); here only its fingerprint is compared."""
        state_path = self.path / STATE_FILE
        state = json.loads(state_path.read_text()) if state_path.is_file() else None
        if self.path.exists():
            if resume and has_resumable_work(state):
                if state.get("fingerprint") != self.fingerprint:
                    raise OutputError(
                        f"{self.path} holds a partial run with other inputs or options; rerun with the "
                        f"options it was started with, or delete {self.path} to start over"
                    )
                self.captured = bool(state.get("captured"))
                return int(state["finished_layers"])
            if has_resumable_work(state):
                raise OutputError(f"{self.path} holds a partial run; add --resume to continue it")
            shutil.rmtree(self.path)  # nothing finished in it: a run stopped while loading
        self.layers_dir.mkdir(parents=True)
        self._write_state(0)
        return 0

    def save_captured(self, inputs: list[LayerInputs]) -> None:
        _save(self.path / "captured.pt", [{"kwargs": s.kwargs, "token_mask": s.token_mask,
                                           "deepstack": s.deepstack and s.deepstack.to_dict()} for s in inputs])
        _save(self.path / "activations.pt", [s.hidden for s in inputs])
        self.captured = True
        self._write_state(0)

    def _write_state(self, finished_layers: int) -> None:
        write_json(self.path / STATE_FILE, {"fingerprint": self.fingerprint, "finished_layers": finished_layers,
                                            "total_layers": self.total_layers, "captured": self.captured})

    def load_inputs(self) -> list[LayerInputs]:
        captured = torch.load(self.path / "captured.pt", weights_only=False)
        hidden = torch.load(self.path / "activations.pt", weights_only=True)
        return [LayerInputs(h, c["kwargs"], c["token_mask"], DeepStack.from_dict(c.get("deepstack")))
                for h, c in zip(hidden, captured, strict=True)]

    def finish_layer(self, index: int, tensors: dict[str, torch.Tensor], next_hidden: list[torch.Tensor],
                     reports: list[dict[str, Any]]) -> None:
        layer_file = self.layers_dir / f"layer_{index:05d}.safetensors"
        tmp = layer_file.with_name(layer_file.name + ".tmp")
        save_file({k: t.contiguous().cpu() for k, t in tensors.items()}, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, layer_file)
        _save(self.path / "activations.pt", [h.cpu() for h in next_hidden])
        write_json(self.path / "report.json", {"linears": reports})
        self._write_state(index + 1)

    def reports(self) -> list[dict[str, Any]]:
        path = self.path / "report.json"
        return json.loads(path.read_text())["linears"] if path.is_file() else []

    def layer_files(self) -> list[Path]:
        return sorted(self.layers_dir.glob("layer_*.safetensors"))

    def clear_resume_state(self) -> None:
        """Remove what only resuming needs, leaving the checkpoint files."""
        for name in ("captured.pt", "activations.pt", "report.json", STATE_FILE):
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.layers_dir, ignore_errors=True)


def _save(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
