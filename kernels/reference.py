"""Plain-torch definitions of the packed weight layouts: the math every kernel must reproduce.

This is the single definition of how our checkpoints store integer codes: packing and
unpacking for every format, dequantization and the reference matmul. The export code
(qwen2vl_quant.formats) packs with these functions, the quantized linear module and the
dispatcher dequantize with them, and every kernel test compares against them. It lives in
kernels/ because the kernels may import nothing of the package (DESIGN.md section 2).

Notation: a Linear with in_features K, out_features N, group size g (g = K when there is
one group per column), ``bits`` in {4, 8}, ``pack = 32 // bits`` values per int32.

GPTQ (AutoGPTQ / GPTQModel / transformers / vLLM "gptq" checkpoints):
    qweight int32 [K/pack, N]  packed along K: code of row k = pack*r + i sits at bits i*bits
                               of qweight[r, n]
    qzeros  int32 [G, N/pack]  packed along N the same way (column n = pack*c + i)
    scales  fp16  [G, N]
    g_idx   int32 [K]          group of each input row (act-order permutes it)
    checkpoint_format "gptq" (v1) stores zero - 1, so the true zero is stored + 1
    (AutoGPTQ's historical off-by-one, kept by every loader); "gptq_v2" stores it raw.
    A true zero of 0 cannot be stored in v1: no loader wraps it back (GPTQModel adds
    0x11111111 to the packed word, carrying into the next field; vLLM's exllama kernel
    reads 16), so our quantizer never produces one (algorithms/quantizer.py, min_zero).
    W[k, n] = (q[k, n] - z[g_idx[k], n]) * s[g_idx[k], n]

AWQ GEMM (AutoAWQ "gemm" version, read by transformers/gptqmodel/vLLM):
    qweight int32 [K, N/pack]  packed along N in the interleaved order AWQ_PACK_ORDER:
                               the nibble at position i of word c holds column
                               pack*c + AWQ_PACK_ORDER[i]
    qzeros  int32 [G, N/pack]  same packing, zeros stored raw
    scales  fp16  [G, N]
    W[k, n] = (q[k, n] - z[k // g, n]) * s[k // g, n]
"""

from __future__ import annotations

import torch

# AutoAWQ packs 8 int4 columns into a word in this order so that its CUDA kernel can
# dequantize pairs with one lop3 instruction (llm-awq, awq/quantize/qmodule.py).
AWQ_PACK_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
AWQ_UNPACK_ORDER = (0, 4, 1, 5, 2, 6, 3, 7)


def values_per_word(bits: int) -> int:
    if bits not in (2, 4, 8):
        raise ValueError(f"bits must be 2, 4 or 8, got {bits}")
    return 32 // bits


def pack_rows(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """int codes [R, C] in [0, 2**bits) -> int32 [R / pack, C], packed along dim 0: the
    inverse of ``unpack_rows``."""
    pack = values_per_word(bits)
    rows, cols = codes.shape
    if rows % pack:
        raise ValueError(f"{rows} rows cannot be packed {pack} per int32")
    grouped = codes.to(torch.int64).reshape(rows // pack, pack, cols)
    shifts = torch.arange(0, 32, bits, dtype=torch.int64, device=codes.device).view(1, pack, 1)
    words = (grouped << shifts).sum(dim=1)
    # Words are built in int64 and wrapped into the int32 range explicitly: a code in the
    # top bits makes the word negative, which is how every loader reads it.
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def pack_cols(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """int codes [R, C] -> int32 [R, C / pack], packed along dim 1: the inverse of ``unpack_cols``."""
    return pack_rows(codes.T.contiguous(), bits).T.contiguous()


def awq_pack_cols(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """int codes [R, C] -> int32 [R, C / pack] in AutoAWQ's order: the inverse of
    ``awq_unpack_cols`` (4-bit words interleaved as AWQ_PACK_ORDER, 8-bit natural)."""
    if bits == 4:
        rows, cols = codes.shape
        order = torch.tensor(AWQ_PACK_ORDER, device=codes.device)
        codes = codes.reshape(rows, cols // 8, 8)[:, :, order].reshape(rows, cols)
    return pack_cols(codes, bits)


def unpack_rows(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """int32 [R, C] packed along dim 0 -> int32 [R * pack, C] codes in [0, 2**bits)."""
    pack = values_per_word(bits)
    shifts = torch.arange(0, 32, bits, dtype=torch.int32, device=packed.device)
    codes = (packed.unsqueeze(1) >> shifts.view(1, pack, 1)) & ((1 << bits) - 1)
    return codes.reshape(packed.shape[0] * pack, packed.shape[1])


def unpack_cols(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """int32 [R, C] packed along dim 1 -> int32 [R, C * pack] codes in [0, 2**bits)."""
    pack = values_per_word(bits)
    shifts = torch.arange(0, 32, bits, dtype=torch.int32, device=packed.device)
    codes = (packed.unsqueeze(2) >> shifts.view(1, 1, pack)) & ((1 << bits) - 1)
    return codes.reshape(packed.shape[0], packed.shape[1] * pack)


def awq_unpack_cols(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """AWQ-interleaved int32 [R, C] -> int32 [R, C * pack] codes in natural column order
    (4-bit words interleaved; 8-bit AWQ is read in natural order, as gptqmodel writes it)."""
    codes = unpack_cols(packed, bits)
    if bits != 4:
        return codes
    order = torch.tensor(AWQ_UNPACK_ORDER, device=packed.device)
    return codes.view(packed.shape[0], packed.shape[1], 8)[:, :, order].reshape(codes.shape)


def dequantize_gptq(
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    g_idx: torch.Tensor,
    bits: int,
    *,
    v1_zero_offset: bool = True,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """GPTQ packed tensors -> dense weight [K, N] (the transpose of nn.Linear.weight)."""
    q = unpack_rows(qweight, bits)
    z = unpack_cols(qzeros, bits)
    if v1_zero_offset:
        z = z + 1  # v1 stores zero - 1 (never 0 - 1, see the module docstring)
    g = g_idx.long()
    out = (q - z[g]).to(torch.float32) * scales[g].to(torch.float32)
    return out.to(dtype or scales.dtype)


def dequantize_awq(
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    group_size: int,
    bits: int,
    *,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """AWQ GEMM packed tensors -> dense weight [K, N]."""
    q = awq_unpack_cols(qweight, bits)
    z = awq_unpack_cols(qzeros, bits)
    rows = torch.arange(q.shape[0], device=q.device) // group_size
    out = (q - z[rows]).to(torch.float32) * scales[rows].to(torch.float32)
    return out.to(dtype or scales.dtype)


def dequantize(layout: str, qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor, group: int, bits: int,
               g_idx: torch.Tensor | None = None, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Any layout ("gptq" v1, "gptq_v2", "awq") -> dense weight [K, N]; g_idx None means
    contiguous groups of ``group`` input rows."""
    if layout == "awq":
        return dequantize_awq(qweight, qzeros, scales, group, bits, dtype=dtype)
    if g_idx is None:
        g_idx = torch.arange(qweight.shape[0] * values_per_word(bits), device=qweight.device) // group
    return dequantize_gptq(qweight, qzeros, scales, g_idx, bits, v1_zero_offset=layout == "gptq", dtype=dtype)


def reference_matmul(x: torch.Tensor, layout: str, qweight: torch.Tensor, qzeros: torch.Tensor,
                     scales: torch.Tensor, group: int, bits: int, g_idx: torch.Tensor | None = None) -> torch.Tensor:
    """x @ dequant(W) in float32, returned in x's dtype: what every kernel computes."""
    w = dequantize(layout, qweight, qzeros, scales, group, bits, g_idx, dtype=torch.float32)
    return (x.float() @ w).to(x.dtype)
