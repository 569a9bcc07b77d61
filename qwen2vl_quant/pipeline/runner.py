"""Running one decoder layer over every calibration sample, with hooks on its Linears.

The pipeline alone registers hooks and moves tensors (DESIGN.md section 2); the algorithms
only ever see the tensors these hooks collect.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
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


def batched(tensors: Iterable[torch.Tensor], min_tokens: int) -> Iterator[torch.Tensor]:
    """Consecutive [tokens, K] tensors concatenated into batches of at least ``min_tokens``
    rows (the last may be smaller), never splitting one: statistics over short samples are
    accumulated a few thousand tokens at a time, where one product runs at a better rate."""
    pending: list[torch.Tensor] = []
    count = 0
    for tensor in tensors:
        pending.append(tensor)
        count += tensor.shape[0]
        if count >= min_tokens:
            yield pending[0] if len(pending) == 1 else torch.cat(pending)
            pending, count = [], 0
    if pending:
        yield pending[0] if len(pending) == 1 else torch.cat(pending)


class StridedSample:
    """About ``max_tokens`` real tokens, evenly spaced over a stream of [tokens, K] batches
    that holds ``total_tokens`` in all (AutoAWQ takes every n-th token the same way; the
    spacing here is fractional, so the whole budget is used): statistics that need only a
    sample of the tokens, spread over the whole calibration set."""

    def __init__(self, total_tokens: int, max_tokens: int, device: torch.device | None = None) -> None:
        self.total = max(1, total_tokens)
        self.max_tokens = max(1, max_tokens)
        self.device = device
        self.seen = 0
        self.parts: list[torch.Tensor] = []

    def rows(self, count: int) -> torch.Tensor | slice:
        """Which of the next ``count`` tokens of the stream are in the sample; moves past them.

        Token j of the stream is kept when floor(j * max / total) steps up at j (token 0
        always): min(max, total) tokens in all, one every total / max."""
        start, self.seen = self.seen, self.seen + count
        if self.max_tokens >= self.total:
            return slice(None)
        j = torch.arange(start - 1, start + count, dtype=torch.int64)
        steps = torch.div(j * self.max_tokens, self.total, rounding_mode="floor")
        return torch.nonzero(steps[1:] > steps[:-1]).flatten()

    def add(self, x: torch.Tensor) -> None:
        """Keep the sampled rows of the next batch ``x`` [tokens, K]."""
        kept = x[self.rows(x.shape[0])]
        self.parts.append(kept if self.device is None else kept.to(self.device))

    def tensor(self) -> torch.Tensor:
        return torch.cat(self.parts)


class ErrorMeter:
    """Relative output error ||y_q - y|| / ||y|| of each quantized Linear, where y uses the
    float reference weight and both see the inputs of the quantized model.

    Measured on an evenly spaced subset of at most ``max_tokens`` real tokens: the figure
    is a diagnostic, and the reference matmul would otherwise cost a second forward pass.
    """

    def __init__(self, layer: nn.Module, originals: dict[str, torch.Tensor], total_tokens: int,
                 max_tokens: int = 1024) -> None:
        self.layer = layer
        self.originals = originals
        self.total_tokens, self.max_tokens = total_tokens, max_tokens
        self.samples: dict[str, StridedSample] = {}
        self.sums: dict[str, list[float]] = {name: [0.0, 0.0] for name in originals}

    def add(self, name: str, x: torch.Tensor, y: torch.Tensor) -> None:
        """x, y: [tokens, features] input and output of the quantized Linear (real tokens)."""
        sample = self.samples.setdefault(name, StridedSample(self.total_tokens, self.max_tokens))
        rows = sample.rows(x.shape[0])
        x, y = x[rows], y[rows]
        bias = getattr(self.layer.get_submodule(name), "bias", None)
        reference = F.linear(x, self.originals[name].to(x.dtype), bias).float()
        self.sums[name][0] += float((y.float() - reference).pow(2).sum())
        self.sums[name][1] += float(reference.pow(2).sum())

    def hook(self, name: str, box: dict[str, torch.Tensor]):
        """A forward hook feeding ``add``; ``box["mask"]`` holds the current real-token mask."""
        def forward_hook(_module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            mask = box["mask"]
            self.add(name, args[0].reshape(-1, args[0].shape[-1])[mask], output.reshape(-1, output.shape[-1])[mask])
        return forward_hook

    def rel_error(self, name: str) -> float:
        err, ref = self.sums[name]
        return (err / ref) ** 0.5 if ref > 0 else 0.0
