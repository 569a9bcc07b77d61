"""Capturing what the first decoder layer receives, one calibration sample at a time.

A forward pre-hook on layer 0 records its hidden states and every keyword argument
(M-RoPE position embeddings, attention mask, position ids, ...) and then stops the forward
with a dedicated exception. Other toolkits raise ValueError for this, which also swallows
real ValueErrors from transformers (DESIGN.md section 5).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from ..calibration.batches import CalibrationSample

logger = logging.getLogger(__name__)


class StopForward(Exception):
    """Raised by our hooks to end a forward early; never escapes the pipeline."""


@dataclass
class LayerInputs:
    """What one sample feeds a decoder layer: hidden states, keyword arguments, real tokens."""

    hidden: torch.Tensor  # [batch, seq, hidden]
    kwargs: dict[str, Any]
    token_mask: torch.Tensor  # bool [batch, seq]


def capture_first_layer_inputs(
    model: nn.Module,
    first_layer: nn.Module,
    samples: list[CalibrationSample],
    device: torch.device,
    store_device: torch.device,
    show_progress: bool = True,
) -> list[LayerInputs]:
    """Run ``model`` on each sample up to ``first_layer`` and return what that layer got."""
    captured: list[LayerInputs] = []
    current: dict[str, Any] = {}

    def hook(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        hidden = args[0] if args else kwargs.pop("hidden_states")
        rest = {k: move_to(v, store_device) for k, v in kwargs.items()}
        current["inputs"] = LayerInputs(hidden.detach().to(store_device), rest, current["mask"])
        raise StopForward

    handle = first_layer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.inference_mode(), flush_denormals():
            for sample in tqdm(samples, desc="capture layer-0 inputs", unit="sample", leave=False,
                               disable=not show_progress):
                current.clear()
                current["mask"] = sample.token_mask.to(store_device)
                inputs = {k: v.to(device) for k, v in sample.inputs.items()}
                try:
                    model(**inputs, use_cache=False)
                except StopForward:
                    pass
                if "inputs" not in current:
                    raise RuntimeError(f"sample {sample.name} never reached the first decoder layer")
                captured.append(current.pop("inputs"))
    finally:
        handle.remove()
    return captured


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Treat subnormal floats as zero on CPU while the vision tower runs.

    Subnormal operands make the CPU's float units take a slow path: on a Qwen2-VL-2B
    shaped vision tower with random weights, whose MLP activations are mostly subnormal,
    QuickGELU's sigmoid and products took 55 % of capture time and ran 5-15x faster with
    flushing. Values below 1e-38 change nothing a calibration can see.

    The flag belongs to the calling thread: torch's intra-op worker threads keep theirs,
    so with several threads only the calling thread's share of each op is sped up (with
    2 threads, capture went from 52 s to 38 s on that model). torch has no getter for the
    flag; its default is off, which is what is restored.
    """
    supported = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported:
            torch.set_flush_denormal(False)


def move_to(value: Any, device: torch.device) -> Any:
    """Move tensors (also inside tuples, e.g. (cos, sin) position embeddings) to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(device)
    if isinstance(value, tuple):
        return tuple(move_to(v, device) for v in value)
    if isinstance(value, list):
        return [move_to(v, device) for v in value]
    if isinstance(value, dict):
        return {k: move_to(v, device) for k, v in value.items()}
    return value
