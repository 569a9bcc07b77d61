"""Packing is the exact inverse of the reference unpacking that loaders and kernels use."""

import pytest
import torch

from qwen2vl_quant.formats.gptq import pack_gptq
from qwen2vl_quant.kernels.reference import awq_pack_cols, pack_cols, pack_rows
from qwen2vl_quant.kernels.reference import awq_unpack_cols, dequantize_gptq, unpack_cols, unpack_rows


@pytest.mark.parametrize("bits", [4, 8])
def test_pack_unpack_roundtrip(bits):
    codes = torch.randint(0, 2**bits, (64, 40), dtype=torch.int32)
    assert torch.equal(unpack_rows(pack_rows(codes, bits), bits), codes)
    assert torch.equal(unpack_cols(pack_cols(codes, bits), bits), codes)
    assert torch.equal(awq_unpack_cols(awq_pack_cols(codes, bits), bits), codes)


def test_gptq_4bit_word_layout_matches_autogptq():
    # Row k = 8r + i of column n lives at bits 4i of qweight[r, n] (AutoGPTQ pack()).
    codes = torch.zeros(8, 1, dtype=torch.int32)
    codes[:, 0] = torch.tensor([1, 2, 3, 4, 5, 6, 7, 15])
    word = int(pack_rows(codes, 4)[0, 0]) & 0xFFFFFFFF
    assert word == 0xF7654321


def test_awq_4bit_interleaved_order():
    # AutoAWQ: nibble i of a word holds column order_map[i], order_map = [0, 2, 4, 6, 1, 3, 5, 7].
    codes = torch.arange(8, dtype=torch.int32).view(1, 8)
    word = int(awq_pack_cols(codes, 4)[0, 0]) & 0xFFFFFFFF
    nibbles = [(word >> (4 * i)) & 0xF for i in range(8)]
    assert nibbles == [0, 2, 4, 6, 1, 3, 5, 7]


@pytest.mark.parametrize("bits", [4, 8])
def test_gptq_v1_zero_offset_roundtrip(bits):
    n, k, g = 16, 64, 32
    codes = torch.randint(0, 2**bits, (n, k), dtype=torch.uint8)
    zeros = torch.randint(1, 2**bits, (k // g, n), dtype=torch.int32)
    zeros[1, :4] = 2**bits - 1
    scales = torch.rand(k // g, n).half() + 0.01
    g_idx = (torch.arange(k) // g).int()
    packed = pack_gptq(codes, zeros, scales, g_idx, bits)
    assert packed["qweight"].shape == (k * bits // 32, n)
    assert packed["qzeros"].shape == (k // g, n * bits // 32)
    stored = unpack_cols(packed["qzeros"], bits)
    assert torch.equal(stored, zeros - 1)
    dense = dequantize_gptq(packed["qweight"], packed["qzeros"], packed["scales"], packed["g_idx"], bits, dtype=torch.float32)
    expected = (codes.float() - zeros[g_idx.long()].T.float()) * scales[g_idx.long()].T.float()
    torch.testing.assert_close(dense, expected.T)


def test_gptq_v1_refuses_a_zero_point_of_0():
    zeros = torch.ones(1, 8, dtype=torch.int32)
    zeros[0, 3] = 0
    with pytest.raises(ValueError, match="zero point of 0"):
        pack_gptq(torch.zeros(8, 32, dtype=torch.uint8), zeros, torch.ones(1, 8), torch.zeros(32, dtype=torch.int32), 4)


def test_asymmetric_grids_keep_zero_points_storable():
    from qwen2vl_quant.algorithms.quantizer import dequantize_codes, fit_grid, quantize_codes

    w = torch.rand(64, 32) + 0.01  # all positive: the plain min/max grid would put the zero at 0
    grid = fit_grid(w, 4, sym=False, min_zero=1)
    assert int(grid.zero.min()) == 1
    err = (dequantize_codes(quantize_codes(w, grid), grid) - w).abs().max()
    assert err <= grid.scale.max() / 2 + 1e-6  # refitted, not clipped
