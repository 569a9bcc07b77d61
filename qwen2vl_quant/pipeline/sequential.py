"""Walking a decoder layer group by group, computing each activation once.

The decoder layers of every family we handle are two pre-norm residual blocks
(arch.DecoderLayout, e.g. Qwen2VLDecoderLayer.forward):

    h2  = h  + o_proj(attention(q/k/v_proj(input_norm(h))))
    out = h2 + down_proj(act(gate_proj(x2)) * up_proj(x2)),   x2 = post_attention_norm(h2)

True-sequential quantization needs the inputs of each group with the earlier groups
already quantized. Re-running the layer from the top for every group (what hook-based
toolkits do) costs about three forward passes per layer; following the two blocks by hand
costs one, because every group's input is computed from cached, already-quantized results.
``tests/test_sequential.py`` checks that the outputs are bit-identical to the layer's own
forward with the quantized modules.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol

import torch
from torch import nn

from ..arch import ArchSpec
from .capture import StopForward, move_to
from .runner import ErrorMeter, LayerRunner, batched

# Real tokens per statistics update (pipeline memory: this many rows of the widest input, in
# float32, e.g. 4096 x 8960 x 4 B = 147 MB for Qwen2-VL-2B's down_proj).
STATISTICS_CHUNK_TOKENS = 4096


class Statistics(Protocol):
    """What a method accumulates over a group's input (GPTQ: its Hessian)."""

    def add_batch(self, x: torch.Tensor) -> None: ...


# Called once per group with the statistics of the group's (shared) input, or None when the
# method needs none; must replace the group's Linears with quantized ones.
SolveGroup = Callable[[tuple[str, ...], Any], None]
# in_features -> a fresh Statistics for an input that wide; None when the method needs none.
NewStatistics = Callable[[int], Statistics] | None


@torch.inference_mode()
def quantize_sequentially(layer: nn.Module, runner: LayerRunner, spec: ArchSpec, solve: SolveGroup,
                          meter: ErrorMeter, store_device: torch.device,
                          new_statistics: NewStatistics = None) -> list[torch.Tensor]:
    """Quantize the layer's four groups in order; return each sample's layer output."""
    dev = runner.device
    samples = runner.inputs
    masks = [s.token_mask.to(dev).reshape(-1) for s in samples]
    qkv, o, gate_up, down = spec.sequential_groups
    parts = spec.decoder
    input_norm, post_norm = layer.get_submodule(parts.input_norm), layer.get_submodule(parts.post_attention_norm)
    attention, activation = layer.get_submodule(parts.attention), layer.get_submodule(parts.mlp_activation)

    def real(t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return t.reshape(-1, t.shape[-1])[mask]

    def statistics_of(inputs: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> Statistics | None:
        if new_statistics is None:
            return None
        statistics = None
        for chunk in batched((real(x, mask) for x, mask in inputs), STATISTICS_CHUNK_TOKENS):
            if statistics is None:
                statistics = new_statistics(chunk.shape[-1])
            statistics.add_batch(chunk)
        return statistics

    # q/k/v read the input norm's output: no Linear has to run for their statistics.
    solve(qkv, statistics_of((input_norm(s.hidden.to(dev)), m) for s, m in zip(samples, masks)))

    # o_proj reads the attention output, which needs the quantized q/k/v: run the attention
    # once per sample, keep o_proj's input, stop before o_proj computes anything.
    o_inputs = []
    box: dict[str, torch.Tensor] = {}

    def grab(_module, args):
        box["x"] = args[0]
        raise StopForward

    o_proj = layer.get_submodule(o[0])
    meter_hooks = [layer.get_submodule(n).register_forward_hook(meter.hook(n, box)) for n in qkv]
    handle = o_proj.register_forward_pre_hook(grab)
    try:
        for sample, mask in zip(samples, masks):
            box["mask"] = mask
            try:
                attention(hidden_states=input_norm(sample.hidden.to(dev)), **move_to(sample.kwargs, dev))
            except StopForward:
                pass
            o_inputs.append(box.pop("x").to(store_device))
    finally:
        handle.remove()
        for h in meter_hooks:
            h.remove()
    solve(o, statistics_of((x.to(dev), m) for x, m in zip(o_inputs, masks)))

    o_proj = layer.get_submodule(o[0])  # the quantized one now
    residuals = []
    for sample, x, mask in zip(samples, o_inputs, masks):
        x = x.to(dev)
        y = o_proj(x)
        meter.add(o[0], real(x, mask), real(y, mask))
        residuals.append((sample.hidden.to(dev) + y).to(store_device))
    del o_inputs
    solve(gate_up, statistics_of((post_norm(h2.to(dev)), m) for h2, m in zip(residuals, masks)))

    gate_proj, up_proj = (layer.get_submodule(n) for n in gate_up)
    acts = []
    for h2, mask in zip(residuals, masks):
        x2 = post_norm(h2.to(dev))
        gate, up = gate_proj(x2), up_proj(x2)
        meter.add(gate_up[0], real(x2, mask), real(gate, mask))
        meter.add(gate_up[1], real(x2, mask), real(up, mask))
        acts.append((activation(gate) * up).to(store_device))
    solve(down, statistics_of((a.to(dev), m) for a, m in zip(acts, masks)))

    down_proj = layer.get_submodule(down[0])
    outputs = []
    for h2, act, mask in zip(residuals, acts, masks):
        act = act.to(dev)
        y = down_proj(act)
        meter.add(down[0], real(act, mask), real(y, mask))
        outputs.append((h2.to(dev) + y).to(store_device))
    return outputs
