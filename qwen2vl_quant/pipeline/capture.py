"""Capturing what the first decoder layer receives, one calibration sample at a time.

A forward pre-hook on layer 0 records its hidden states and every keyword argument
(M-RoPE position embeddings, attention mask, position ids, ...) and then stops the forward
with a dedicated exception. Other toolkits raise ValueError for this, which also swallows
real ValueErrors from transformers (DESIGN.md section 5).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from ..calibration.batches import CalibrationSample


class StopForward(Exception):
    """Raised by our hooks to end a forward early; never escapes the pipeline."""


@dataclass(frozen=True)
class DeepStack:
    """Qwen3-VL's DeepStack for one sample: features of several vision blocks, added to the
    hidden states at the visual positions after the first decoder layers (one tensor per
    layer: after layer i, ``embeds[i]``), as Qwen3VLTextModel.forward does. Not an input of
    any layer, so the capture records it beside the layer's kwargs."""

    visual_mask: torch.Tensor  # bool [batch, seq]
    embeds: tuple[torch.Tensor, ...]  # [visual tokens, hidden] each

    def to_dict(self) -> dict[str, Any]:
        """Plain tensors, for the resume state (a pickled class would tie it to this code)."""
        return {"visual_mask": self.visual_mask, "embeds": list(self.embeds)}

    @classmethod
    def from_dict(cls, state: dict[str, Any] | None) -> "DeepStack | None":
        return None if state is None else cls(state["visual_mask"], tuple(state["embeds"]))

    def after_layer(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden`` as the next layer sees it (transformers' ``_deepstack_process``)."""
        if index >= len(self.embeds):
            return hidden
        hidden = hidden.clone()
        mask = self.visual_mask.to(hidden.device)
        hidden[mask, :] = hidden[mask, :] + self.embeds[index].to(hidden.device, hidden.dtype)
        return hidden


@dataclass
class LayerInputs:
    """What one sample feeds a decoder layer: hidden states, keyword arguments, real tokens,
    and (Qwen3-VL) what is added to the hidden states after the first layers."""

    hidden: torch.Tensor  # [batch, seq, hidden]
    kwargs: dict[str, Any]
    token_mask: torch.Tensor  # bool [batch, seq]
    deepstack: DeepStack | None = None

    def next(self, hidden: torch.Tensor, index: int) -> "LayerInputs":
        """The inputs of layer ``index + 1``, given layer ``index``'s output ``hidden``."""
        deepstack = self.deepstack
        if deepstack is not None:
            hidden = deepstack.after_layer(index, hidden)
            if index + 1 >= len(deepstack.embeds):
                deepstack = None  # nothing is added after later layers: free the features
        return LayerInputs(hidden, self.kwargs, self.token_mask, deepstack)


def capture_first_layer_inputs(
    model: nn.Module,
    first_layer: nn.Module,
    samples: list[CalibrationSample],
    device: torch.device,
    store_device: torch.device,
    show_progress: bool = True,
    deepstack_source: tuple[nn.Module, str, str] | None = None,
) -> list[LayerInputs]:
    """Run ``model`` on each sample up to ``first_layer`` and return what that layer got.

    deepstack_source: (the text model, its keyword naming the visual positions, its keyword
    holding the DeepStack features): recorded by a pre-hook on the text model's forward."""
    captured: list[LayerInputs] = []
    current: dict[str, Any] = {}

    def hook(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        hidden = args[0] if args else kwargs.pop("hidden_states")
        rest = {k: move_to(v, store_device) for k, v in kwargs.items()}
        current["inputs"] = LayerInputs(hidden.detach().to(store_device), rest, current["mask"],
                                        current.get("deepstack"))
        raise StopForward

    def text_model_hook(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        _, mask_name, embeds_name = deepstack_source
        embeds = kwargs.get(embeds_name)
        if embeds is not None:
            current["deepstack"] = DeepStack(kwargs[mask_name].detach().to(store_device),
                                             tuple(e.detach().to(store_device) for e in embeds))

    handles = [first_layer.register_forward_pre_hook(hook, with_kwargs=True)]
    if deepstack_source is not None:
        handles.append(deepstack_source[0].register_forward_pre_hook(text_model_hook, with_kwargs=True))
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
        for handle in handles:
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
