"""AWQ GEMM checkpoint format (AutoAWQ ``version: gemm``, read by transformers via
gptqmodel, and by vLLM).

Tensors per quantized Linear (K in, N out, G = K / group_size groups), defined in
kernels/reference.py: ``qweight`` int32 [K, N/pack] packed along N, ``qzeros`` int32
[G, N/pack] packed the same way with the zero points stored raw, ``scales`` fp16 [G, N];
``bias`` stays as it was. Dequantization: W[k, n] = (q[k, n] - z[k // g, n]) * s[k // g, n].
"""

from __future__ import annotations

from typing import Any

import torch

from ..kernels.reference import awq_pack_cols

VERSION = "gemm"
# Qwen shipped ["visual"], which transformers 5 no longer matches against model.visual.*:
# the vision tower then becomes AWQ layers and outputs NaN. The pair works in transformers
# and vLLM (DESIGN.md section 4).
MODULES_TO_NOT_CONVERT = ("visual", "model.visual")


def pack_along_n(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """int codes [R, N] -> int32 [R, N / pack], as kernels/reference.awq_unpack_cols reads:
    4-bit in AutoAWQ's interleaved order [0, 2, 4, 6, 1, 3, 5, 7] (WQLinear_GEMM.from_linear);
    8-bit (AutoAWQ's GEMM path has none) in natural order, 4 values per int32, which is
    what gptqmodel reads (tests/test_interop.py loads it in transformers)."""
    if bits not in (4, 8):
        raise ValueError(f"AWQ GEMM packs 4 or 8 bits, got {bits}")
    return awq_pack_cols(codes, bits)


def pack_awq(codes: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor, bits: int) -> dict[str, torch.Tensor]:
    """codes uint8 [N, K], zeros int [G, N] (true zero points), scales [G, N] -> checkpoint tensors."""
    top = 2**bits - 1
    for what, tensor in (("codes", codes), ("zeros", zeros)):
        if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) > top):
            raise ValueError(f"{what} outside [0, {top}] cannot be stored in {bits} bits")
    if zeros.shape != scales.shape or zeros.shape[1] != codes.shape[0]:
        raise ValueError(f"zeros {tuple(zeros.shape)} / scales {tuple(scales.shape)} do not match codes "
                         f"{tuple(codes.shape)} (expected [G, N])")
    return {
        "qweight": pack_along_n(codes.T.contiguous(), bits),
        "qzeros": pack_along_n(zeros.to(torch.int64), bits),
        "scales": scales.to(torch.float16).contiguous(),
    }


def awq_quantization_config(*, bits: int, group_size: int, zero_point: bool, tool_version: str) -> dict[str, Any]:
    """The ``quantization_config`` block of config.json, as AutoAWQ writes it (transformers
    reads ``version`` as its legacy name for ``format``), plus our tool in ``meta``."""
    return {
        "quant_method": "awq",
        "version": VERSION,
        "bits": bits,
        "group_size": group_size,
        "zero_point": zero_point,
        "modules_to_not_convert": list(MODULES_TO_NOT_CONVERT),
        "meta": {"quantizer": [f"qwen2vl-quant:{tool_version}"]},
    }
