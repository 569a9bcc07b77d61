"""Triton device functions shared by the kernels: read one tile of a packed weight.

Contract (every caller):
    * groups are contiguous: input row k belongs to group k // group_size. Act-order
      weights are made so at prepare time by permuting their rows (dispatch.py), as Marlin
      and ExLlamaV2 do, instead of gathering scales per row through g_idx, which would read
      the scales once per row instead of once per group.
    * a K tile never straddles two groups (the launchers pick BLOCK_K dividing the group
      size, or have a single group), so scales and zeros are loaded once per group.
    * BLOCK_K and BLOCK_N are multiples of the number of values per int32 word (pack).
    * qweight, qzeros, scales are contiguous (row strides follow from K and N).

Everything dequantized is computed in fp32 (codes - zero) * scale, as reference.py does.
That is also what the Triton interpreter needs: its bf16 arithmetic and int->bf16 casts
are wrong (DESIGN.md section 4), int->fp32 and fp32 arithmetic are right.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def word_shifts(PACK: tl.constexpr, BITS: tl.constexpr, AWQ_ORDER: tl.constexpr):
    """Bit offset of the j-th column (or row) of a word, j = 0..PACK-1, in natural order.

    AutoAWQ stores column j of a 4-bit word in nibble (j // 2) + 4 * (j % 2), i.e. the
    order [0, 2, 4, 6, 1, 3, 5, 7] (reference.AWQ_PACK_ORDER, llm-awq qmodule.py).
    """
    j = tl.arange(0, PACK)
    shifts = j * BITS
    if AWQ_ORDER:
        shifts = ((j >> 1) + (j & 1) * 4) * 4
    return shifts


@triton.jit
def load_codes(
    qw_ptr,
    k0,
    n0,
    K,
    N,
    BLOCK_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BITS: tl.constexpr,
    PACK_ALONG_K: tl.constexpr,
    AWQ_ORDER: tl.constexpr,
):
    """int32 codes [BLOCK_K, BLOCK_N] of rows k0.., columns n0.. (masked codes read 0).

    The packed words are loaded as their own [BLOCK_K/pack, BLOCK_N] (or [BLOCK_K,
    BLOCK_N/pack]) tile and expanded in registers. Indexing the word with k // pack for
    every row instead would have Triton stage a pack-times redundant tile in shared memory
    (DESIGN.md section 4).
    """
    PACK: tl.constexpr = 32 // BITS
    MASK: tl.constexpr = (1 << BITS) - 1
    shifts = word_shifts(PACK, BITS, AWQ_ORDER)
    if PACK_ALONG_K:
        # GPTQ: qweight int32 [K/pack, N]; row pack*r + i of the tile sits at bits i*BITS.
        offs_kw = k0 // PACK + tl.arange(0, BLOCK_K // PACK)
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mask = (offs_kw[:, None] < K // PACK) & (offs_n[None, :] < N)
        words = tl.load(qw_ptr + offs_kw[:, None] * N + offs_n[None, :], mask=mask, other=0)
        codes = (words[:, None, :] >> shifts[None, :, None]) & MASK
        codes = tl.reshape(codes, (BLOCK_K, BLOCK_N))
    else:
        # AWQ: qweight int32 [K, N/pack]; column pack*c + j of the tile sits at shifts[j].
        offs_k = k0 + tl.arange(0, BLOCK_K)
        offs_nw = n0 // PACK + tl.arange(0, BLOCK_N // PACK)
        mask = (offs_k[:, None] < K) & (offs_nw[None, :] < N // PACK)
        words = tl.load(qw_ptr + offs_k[:, None] * (N // PACK) + offs_nw[None, :], mask=mask, other=0)
        codes = (words[:, :, None] >> shifts[None, None, :]) & MASK
        codes = tl.reshape(codes, (BLOCK_K, BLOCK_N))
    return codes


@triton.jit
def load_group(
    s_ptr,
    qz_ptr,
    group,
    n0,
    N,
    BLOCK_N: tl.constexpr,
    BITS: tl.constexpr,
    AWQ_ORDER: tl.constexpr,
    ZERO_OFFSET: tl.constexpr,
):
    """(scale fp32 [BLOCK_N], zero int32 [BLOCK_N]) of one group for columns n0..

    qzeros is int32 [G, N/pack] packed along N in both layouts; GPTQ v1 stores zero - 1,
    so ZERO_OFFSET=1 adds it back, without wrapping: a stored 2**bits - 1 is a zero of
    2**bits, as vLLM's exllama kernel reads it (reference.dequantize_gptq).
    """
    PACK: tl.constexpr = 32 // BITS
    MASK: tl.constexpr = (1 << BITS) - 1
    offs_n = n0 + tl.arange(0, BLOCK_N)
    scale = tl.load(s_ptr + group * N + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)
    offs_nw = n0 // PACK + tl.arange(0, BLOCK_N // PACK)
    words = tl.load(qz_ptr + group * (N // PACK) + offs_nw, mask=offs_nw < N // PACK, other=0)
    shifts = word_shifts(PACK, BITS, AWQ_ORDER)
    zero = tl.reshape((words[:, None] >> shifts[None, :]) & MASK, (BLOCK_N,))
    zero = zero + ZERO_OFFSET
    return scale, zero


@triton.jit
def dequant_tile(
    qw_ptr,
    k0,
    n0,
    K,
    N,
    scale,
    zero,
    BLOCK_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BITS: tl.constexpr,
    PACK_ALONG_K: tl.constexpr,
    AWQ_ORDER: tl.constexpr,
):
    """fp32 weight tile W[k0:k0+BLOCK_K, n0:n0+BLOCK_N] = (q - z) * s (zero where masked)."""
    codes = load_codes(qw_ptr, k0, n0, K, N, BLOCK_K, BLOCK_N, BITS, PACK_ALONG_K, AWQ_ORDER)
    return (codes - zero[None, :]).to(tl.float32) * scale[None, :]
