"""Walking a decoder layer group by group, computing each activation once.

A Qwen2-VL decoder layer is two pre-norm residual blocks (Qwen2VLDecoderLayer.forward):

    h2  = h  + o_proj(attention(q/k/v_proj(input_layernorm(h))))
    out = h2 + down_proj(act(gate_proj(x2)) * up_proj(x2)),   x2 = post_attention_layernorm(h2)

True-sequential quantization needs the inputs of each group with the earlier groups
already quantized. Re-running the layer from the top for every group (what hook-based
toolkits do) costs about three forward passes per layer; following the two blocks by hand
costs one, because every group's input is computed from cached, already-quantized results.
``tests/test_sequential.py`` checks that the outputs are bit-identical to the layer's own
forward with the quantized modules.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..algorithms.gptq import HessianAccumulator
from .capture import StopForward, move_to
from .runner import ErrorMeter, LayerRunner

QKV = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
O = ("self_attn.o_proj",)
GATE_UP = ("mlp.gate_proj", "mlp.up_proj")
DOWN = ("mlp.down_proj",)
GROUPS = (QKV, O, GATE_UP, DOWN)

# Real tokens per Hessian update (pipeline memory: this many rows of the widest input, in
# float32, e.g. 4096 x 8960 x 4 B = 147 MB for Qwen2-VL-2B's down_proj).
HESSIAN_CHUNK_TOKENS = 4096

# Called once per group with the Hessian of the group's (shared) input, or None when the
# method needs no statistics; must replace the group's Linears with quantized ones.
SolveGroup = Callable[[tuple[str, ...], HessianAccumulator | None], None]


@torch.inference_mode()
def quantize_sequentially(layer: nn.Module, runner: LayerRunner, solve: SolveGroup, meter: ErrorMeter,
                          store_device: torch.device, with_hessians: bool = True) -> list[torch.Tensor]:
    """Quantize the layer's four groups in order; return each sample's layer output."""
    dev = runner.device
    samples = runner.inputs
    masks = [s.token_mask.to(dev).reshape(-1) for s in samples]

    def real(t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return t.reshape(-1, t.shape[-1])[mask]

    def hessian_of(inputs) -> HessianAccumulator | None:
        if not with_hessians:
            return None
        accumulator = None
        pending: list[torch.Tensor] = []
        pending_tokens = 0
        for x, mask in inputs:
            if accumulator is None:
                accumulator = HessianAccumulator(x.shape[-1], dev)
            pending.append(real(x, mask))
            pending_tokens += pending[-1].shape[0]
            # Samples are short (a few hundred tokens): one product over several of them
            # runs at a better rate, and every add_batch rescales the whole K x K matrix.
            if pending_tokens >= HESSIAN_CHUNK_TOKENS:
                accumulator.add_batch(torch.cat(pending))
                pending.clear()
                pending_tokens = 0
        if pending:
            accumulator.add_batch(torch.cat(pending))
        return accumulator

    # q/k/v read input_layernorm(h): no Linear has to run for their statistics.
    solve(QKV, hessian_of((layer.input_layernorm(s.hidden.to(dev)), m) for s, m in zip(samples, masks)))

    # o_proj reads the attention output, which needs the quantized q/k/v: run the attention
    # once per sample, keep o_proj's input, stop before o_proj computes anything.
    o_inputs = []
    box: dict[str, torch.Tensor] = {}

    def grab(_module, args):
        box["x"] = args[0]
        raise StopForward

    meter_hooks = [layer.get_submodule(n).register_forward_hook(meter.hook(n, box)) for n in QKV]
    handle = layer.self_attn.o_proj.register_forward_pre_hook(grab)
    try:
        for sample, mask in zip(samples, masks):
            box["mask"] = mask
            try:
                layer.self_attn(hidden_states=layer.input_layernorm(sample.hidden.to(dev)),
                                **move_to(sample.kwargs, dev))
            except StopForward:
                pass
            o_inputs.append(box.pop("x").to(store_device))
    finally:
        handle.remove()
        for h in meter_hooks:
            h.remove()
    solve(O, hessian_of((x.to(dev), m) for x, m in zip(o_inputs, masks)))

    residuals = []
    for sample, x, mask in zip(samples, o_inputs, masks):
        x = x.to(dev)
        y = layer.self_attn.o_proj(x)
        meter.add(O[0], real(x, mask), real(y, mask))
        residuals.append((sample.hidden.to(dev) + y).to(store_device))
    del o_inputs
    solve(GATE_UP, hessian_of((layer.post_attention_layernorm(h2.to(dev)), m) for h2, m in zip(residuals, masks)))

    mlp = layer.mlp
    acts = []
    for h2, mask in zip(residuals, masks):
        x2 = layer.post_attention_layernorm(h2.to(dev))
        gate, up = mlp.gate_proj(x2), mlp.up_proj(x2)
        meter.add(GATE_UP[0], real(x2, mask), real(gate, mask))
        meter.add(GATE_UP[1], real(x2, mask), real(up, mask))
        acts.append((mlp.act_fn(gate) * up).to(store_device))
    solve(DOWN, hessian_of((a.to(dev), m) for a, m in zip(acts, masks)))

    outputs = []
    for h2, act, mask in zip(residuals, acts, masks):
        act = act.to(dev)
        y = mlp.down_proj(act)
        meter.add(DOWN[0], real(act, mask), real(y, mask))
        outputs.append((h2.to(dev) + y).to(store_device))
    return outputs
