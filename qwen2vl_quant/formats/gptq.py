"""GPTQ checkpoint format (AutoGPTQ v1, as transformers/optimum, GPTQModel and vLLM read it).

Tensors per quantized Linear (K in, N out, G groups), defined in kernels/reference.py:
``qweight`` int32 [K/pack, N], ``qzeros`` int32 [G, N/pack], ``scales`` fp16 [G, N],
``g_idx`` int32 [K]; ``bias`` stays as it was. v1 stores each zero point minus one.
"""

from __future__ import annotations

from typing import Any

import torch

from ..kernels.reference import pack_cols, pack_rows

CHECKPOINT_FORMAT = "gptq"


def pack_gptq(
    codes: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor, g_idx: torch.Tensor, bits: int
) -> dict[str, torch.Tensor]:
    """codes uint8 [N, K], zeros int [G, N] (true zero points), scales [G, N], g_idx [K]."""
    if int(zeros.min()) < 1:
        # v1 stores zero - 1 and no loader reads a stored -1 back as 0 (kernels/reference.py).
        raise ValueError("GPTQ v1 cannot store a zero point of 0; fit grids with min_zero=1")
    stored_zeros = zeros.to(torch.int64) - 1
    return {
        "qweight": pack_rows(codes.T.contiguous(), bits),
        "qzeros": pack_cols(stored_zeros, bits),
        "scales": scales.to(torch.float16).contiguous(),
        "g_idx": g_idx.to(torch.int32).contiguous(),
    }


def quantization_config(
    *,
    bits: int,
    group_size: int,
    sym: bool,
    desc_act: bool,
    static_groups: bool,
    damp_percent: float,
    true_sequential: bool,
    tool_version: str,
) -> dict[str, Any]:
    """The ``quantization_config`` block of config.json.

    No ``block_name_to_quantize``: pointing it at "model.layers" loads without error and
    leaves the decoder with random weights in transformers 5 (DESIGN.md). Which modules are
    quantized is instead told by the tensors present (vLLM) and the Linear names optimum
    finds with qweight tensors.

    ``desc_act`` tells loaders whether g_idx permutes the groups. Act-order with static
    groups keeps g_idx trivial (channel // group), so it is written as false: vLLM refuses
    desc_act true, and reads such a checkpoint correctly as false (issue 14). That the
    weights were solved in activation order is kept in ``meta.act_order``.
    """
    return {
        "quant_method": "gptq",
        "bits": bits,
        "group_size": group_size,
        "desc_act": desc_act and not static_groups,
        "sym": sym,
        "static_groups": static_groups,
        "true_sequential": true_sequential,
        "damp_percent": damp_percent,
        "checkpoint_format": CHECKPOINT_FORMAT,
        "lm_head": False,
        "meta": {"quantizer": [f"qwen2vl-quant:{tool_version}"], "act_order": desc_act},
    }
