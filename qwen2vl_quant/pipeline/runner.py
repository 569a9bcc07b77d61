"""Running one decoder layer over every calibration sample, with hooks on its Linears.

The pipeline alone registers hooks and moves tensors (DESIGN.md section 2); the algorithms
only ever see the tensors these hooks collect.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import nn

from .capture import LayerInputs, StopForward, move_to

# hook(module_name, inputs [tokens, K] of real tokens only, output [tokens, N] of real tokens)
LinearHook = Callable[[str, torch.Tensor, torch.Tensor], None]


class LayerRunner:
    """Feeds the captured inputs of every sample through a decoder layer on ``device``."""

    def __init__(self, inputs: list[LayerInputs], device: torch.device) -> None:
        self.inputs = inputs
        self.device = device

    @torch.inference_mode()
    def forward_all(self, layer: nn.Module, hooks: dict[str, LinearHook] | None = None, stop_after: str | None = None,
                    keep_outputs: bool = False, store_device: torch.device | None = None) -> list[torch.Tensor] | None:
        """Run ``layer`` on every sample; call ``hooks`` on the named Linears' real tokens.

        stop_after: end each forward right after this Linear ran (its hooks still see it), so
        collecting statistics for the attention projections does not pay for the MLP.
        keep_outputs: return each sample's output hidden states (on ``store_device``).
        """
        outputs = [] if keep_outputs else None
        mask_box: dict[str, torch.Tensor] = {}
        with self._hooked(layer, hooks or {}, stop_after, mask_box):
            for sample in self.inputs:
                mask_box["mask"] = sample.token_mask.to(self.device)
                hidden = sample.hidden.to(self.device)
                kwargs = move_to(sample.kwargs, self.device)
                try:
                    out = layer(hidden, **kwargs)
                except StopForward:
                    continue
                if isinstance(out, tuple):  # transformers < 5 returned (hidden, ...)
                    out = out[0]
                if outputs is not None:
                    outputs.append(out.to(store_device or sample.hidden.device))
        return outputs

    @contextlib.contextmanager
    def _hooked(self, layer: nn.Module, hooks: dict[str, LinearHook], stop_after: str | None,
                mask_box: dict[str, torch.Tensor]) -> Iterator[None]:
        handles = []

        def make(name: str, hook: LinearHook | None):
            def forward_hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
                if hook is not None:
                    mask = mask_box["mask"].reshape(-1)
                    x = args[0].reshape(-1, args[0].shape[-1])[mask]
                    y = output.reshape(-1, output.shape[-1])[mask]
                    hook(name, x, y)
                if name == stop_after:
                    raise StopForward
            return forward_hook

        names = set(hooks) | ({stop_after} if stop_after else set())
        try:
            for name in names:
                handles.append(layer.get_submodule(name).register_forward_hook(make(name, hooks.get(name))))
            yield
        finally:
            for handle in handles:
                handle.remove()
