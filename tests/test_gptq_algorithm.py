"""GPTQ as a pure function: options, damping, dead channels, act-order bookkeeping."""

import pytest
import torch

from qwen2vl_quant.algorithms.gptq import HessianAccumulator, gptq_quantize
from qwen2vl_quant.algorithms.rtn import rtn_quantize


def correlated_inputs(tokens=2048, columns=256, seed=0):
    """Activations with correlated channels and a few outlier channels, as in real LLMs."""
    gen = torch.Generator().manual_seed(seed)
    basis = torch.randn(columns // 4, columns, generator=gen)
    x = torch.randn(tokens, columns // 4, generator=gen) @ basis / 4 + 0.3 * torch.randn(tokens, columns, generator=gen)
    x[:, :6] *= 15
    return x


def output_error(x, w, q):
    return float((x @ (w - q).T).norm() / (x @ w.T).norm())


@pytest.fixture(scope="module")
def problem():
    gen = torch.Generator().manual_seed(1)
    x = correlated_inputs()
    w = torch.randn(192, 256, generator=gen) * 0.05
    acc = HessianAccumulator(256)
    for chunk in x.split(300):
        acc.add_batch(chunk)
    return x, w, acc.hessian


OPTIONS = [
    dict(bits=4, group_size=128, sym=True),
    dict(bits=4, group_size=32, sym=False),
    dict(bits=4, group_size=-1, sym=True),
    dict(bits=4, group_size=64, sym=True, desc_act=True),
    dict(bits=4, group_size=64, sym=True, desc_act=True, static_groups=True),
    dict(bits=8, group_size=128, sym=True),
    dict(bits=8, group_size=128, sym=False, desc_act=True),
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_gptq_beats_round_to_nearest(problem, options):
    x, w, hessian = problem
    result = gptq_quantize(w, hessian, **options)
    rtn = rtn_quantize(w, bits=options["bits"], group_size=options["group_size"], sym=options["sym"])
    gptq_err = output_error(x, w, result.weight.dequantize())
    rtn_err = output_error(x, w, rtn.dequantize())
    assert gptq_err < 0.8 * rtn_err, (gptq_err, rtn_err)
    codes = result.weight.codes
    assert codes.dtype == torch.uint8 and int(codes.max()) <= 2 ** options["bits"] - 1


def test_hessian_is_mean_of_outer_products_over_real_tokens():
    x = torch.randn(3, 10, 8)
    mask = torch.zeros(3, 10, dtype=torch.bool)
    mask[:, :7] = True
    acc = HessianAccumulator(8)
    acc.add_batch(x[:2], mask[:2])
    acc.add_batch(x[2:], mask[2:])
    real = x[:, :7].reshape(-1, 8)
    torch.testing.assert_close(acc.hessian, 2 * real.T @ real / real.shape[0], rtol=1e-5, atol=1e-5)
    assert acc.tokens == 21


def test_act_order_group_index_follows_the_permutation(problem):
    _, w, hessian = problem
    result = gptq_quantize(w, hessian, bits=4, group_size=64, sym=True, desc_act=True)
    g_idx = result.weight.g_idx
    order = torch.argsort(torch.diag(hessian), descending=True)
    # the j-th most active channel belongs to group j // 64
    assert torch.equal(g_idx[order].long(), torch.arange(256) // 64)
    static = gptq_quantize(w, hessian, bits=4, group_size=64, sym=True, desc_act=True, static_groups=True)
    assert torch.equal(static.weight.g_idx.long(), torch.arange(256) // 64)


def test_dead_input_channels_are_quantized_to_zero(problem):
    x, w, _ = problem
    x = x.clone()
    x[:, [3, 100]] = 0
    acc = HessianAccumulator(256)
    acc.add_batch(x)
    result = gptq_quantize(w, acc.hessian, bits=4, group_size=128, sym=True)
    assert result.dead_channels == 2
    assert torch.all(result.weight.dequantize()[:, [3, 100]] == 0)


def test_damping_grows_until_the_hessian_is_positive_definite(problem):
    _, w, hessian = problem
    # Shift the spectrum so that the default 1 % damping leaves a negative eigenvalue.
    shift = 0.03 * torch.diag(hessian).mean()
    indefinite = hessian - shift * torch.eye(256)
    assert torch.linalg.eigvalsh(indefinite + 0.01 * torch.diag(hessian).mean() * torch.eye(256)).min() < 0
    result = gptq_quantize(w, indefinite, bits=4, group_size=128, sym=True, damp_percent=0.01, damp_auto_increment=0.01)
    assert result.damp_percent > 0.01
    assert torch.isfinite(result.weight.dequantize()).all()
    with pytest.raises(RuntimeError, match="not positive definite"):
        gptq_quantize(w, indefinite, bits=4, group_size=128, sym=True, damp_percent=0.01, damp_auto_increment=0.0)


def test_symmetric_grid_has_the_middle_zero(problem):
    _, w, hessian = problem
    for bits in (4, 8):
        result = gptq_quantize(w, hessian, bits=bits, group_size=128, sym=True)
        assert torch.all(result.weight.zeros == 2 ** (bits - 1))


@pytest.mark.parametrize("options", OPTIONS + [dict(bits=4, group_size=32, sym=False, block_size=96)],
                         ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_optimized_solve_picks_the_reference_codes(problem, options):
    """The feedback-form solve (one Cholesky factor, no inverse, reading only H's lower
    triangle) is the reference algorithm rearranged: the same codes and grids up to float
    rounding. Int8's 256 levels put a few weights within rounding of a tie between two
    codes; those may land on either."""
    from gptq_reference import reference_gptq

    _, w, hessian = problem
    ours = gptq_quantize(w, hessian.tril(), **options)  # the upper triangle is never read
    reference = reference_gptq(w, hessian, **options)
    steps = (ours.weight.codes.int() - reference.weight.codes.int()).abs()
    if options["bits"] == 4:
        assert int(steps.max()) == 0
    else:
        assert int(steps.max()) <= 1 and int((steps > 0).sum()) <= steps.numel() // 1000
    assert torch.equal(ours.weight.g_idx, reference.weight.g_idx)
    torch.testing.assert_close(ours.weight.scales, reference.weight.scales, rtol=1e-3, atol=0)
    torch.testing.assert_close(ours.weight.zeros, reference.weight.zeros)
    torch.testing.assert_close(ours.row_losses.sum(), reference.row_losses.sum(), rtol=1e-3, atol=0)


def test_blocks_hold_whole_groups(problem):
    """A group that straddled two blocks would be fitted on rows some of which lack the
    current block's updates (the reference does that, so its codes depend on the block
    size); blocks are rounded to whole groups, so 48 acts as 64 for groups of 64."""
    from gptq_reference import reference_gptq

    _, w, hessian = problem
    ours = gptq_quantize(w, hessian, bits=4, group_size=64, sym=False, block_size=48)
    reference = reference_gptq(w, hessian, bits=4, group_size=64, sym=False, block_size=64)
    assert torch.equal(ours.weight.codes, reference.weight.codes)


def test_cholesky_factor_gives_the_reference_updates(problem):
    """V V^T = H with V upper triangular, and U = diag(V)^-1 M^-1 with M = V diag(V)^-1,
    U being the reference's factor cholesky(cholesky_inverse(cholesky(H)), upper): the
    feedback coefficients M carry the same information as the reference's U."""
    from qwen2vl_quant.algorithms.gptq import _damped_cholesky

    _, _, hessian = problem
    damped = hessian.double().clone()
    damped.diagonal().add_(0.01 * damped.diagonal().mean())
    expected_u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(damped)), upper=True)
    factor, damp = _damped_cholesky(hessian.double().tril(), 0.01, 0.0, torch.ones(256, dtype=torch.bool))
    assert damp == 0.01
    V = factor.upper()
    torch.testing.assert_close(V @ V.T, damped, rtol=1e-10, atol=1e-12)
    M = V / V.diagonal()
    torch.testing.assert_close(torch.diag(1 / V.diagonal()) @ torch.linalg.inv(M), expected_u, rtol=1e-8, atol=1e-10)
    coeffs, diagonal = factor.feedback(64, 128)
    torch.testing.assert_close(coeffs[:, :128].tril(64), M.T[64:128, :128].tril(64))
    torch.testing.assert_close(diagonal, V.diagonal()[64:128])


def test_lower_triangle_accumulation_matches_the_full_product():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(500, 1100, generator=gen)  # 1100: blocks of 256 and a ragged last one
    acc = HessianAccumulator(1100)
    acc.add_batch(x[:300])
    acc.add_batch(x[300:])
    expected = 2 * x.double().T @ x.double() / 500
    torch.testing.assert_close(acc.lower_triangle.tril().double(), expected.tril(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(acc.hessian.double(), expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(acc.hessian, acc.hessian.T)


def test_hessian_of_bf16_activations_is_exact_to_float32_rounding():
    """The bf16 fast path (bf16 products, float32 sums) gives the float64 Hessian to float32
    accuracy, and leaves the global matmul precision as it was."""
    gen = torch.Generator().manual_seed(3)
    chunks = [torch.randn(n, 384, generator=gen).mul(3).bfloat16() for n in (200, 57, 300)]
    acc = HessianAccumulator(384)
    before = torch.backends.mkldnn.matmul.fp32_precision
    for chunk in chunks:
        acc.add_batch(chunk)
    assert torch.backends.mkldnn.matmul.fp32_precision == before
    x = torch.cat(chunks).double()
    expected = 2 * x.T @ x / x.shape[0]
    assert float((acc.hessian.double() - expected).abs().max() / expected.abs().max()) < 2e-6


def test_an_indefinite_hessian_falls_back_to_round_to_nearest_unless_strict(caplog):
    """After every damping retry the layer's Linears are rounded to nearest, with a warning
    and a mark in the report, instead of ending a long run; strict mode makes it an error."""
    import logging
    from types import SimpleNamespace

    from qwen2vl_quant.config import GPTQConfig
    from qwen2vl_quant.modules.quant_linear import GPTQLinear
    from qwen2vl_quant.pipeline.gptq_layer import GPTQFailed, _solve_group

    torch.manual_seed(0)
    layer = torch.nn.Module()
    layer.mlp = torch.nn.Module()
    layer.mlp.gate_proj, layer.mlp.up_proj = torch.nn.Linear(64, 32, bias=False), torch.nn.Linear(64, 32, bias=False)
    originals = {name: getattr(layer.mlp, name).weight.detach().clone() for name in ("gate_proj", "up_proj")}
    indefinite = SimpleNamespace(lower_triangle=-torch.eye(64))  # no damping makes -I positive definite
    config = GPTQConfig(bits=4, group_size=32, damp_auto_increment=0.0)
    with caplog.at_level(logging.WARNING, logger="qwen2vl_quant"):
        reports = _solve_group(layer, 7, ("mlp.gate_proj", "mlp.up_proj"), indefinite, config)
    assert [r.fallback.split(":")[0] for r in reports] == ["round to nearest"] * 2
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and warned[0].startswith("layer 7 mlp.gate_proj, mlp.up_proj: Hessian is not positive "
                                                     "definite") and warned[0].endswith("rounding to nearest instead")
    for name, weight in originals.items():
        module = getattr(layer.mlp, name)
        assert isinstance(module, GPTQLinear)
        rounded = rtn_quantize(weight, bits=4, group_size=32, sym=True).dequantize()
        torch.testing.assert_close(module.dequantize().float(), rounded, rtol=0, atol=0)
    layer.mlp.gate_proj, layer.mlp.up_proj = torch.nn.Linear(64, 32, bias=False), torch.nn.Linear(64, 32, bias=False)
    with pytest.raises(GPTQFailed, match="layer 7 mlp.gate_proj, mlp.up_proj: Hessian is not positive definite"):
        _solve_group(layer, 7, ("mlp.gate_proj", "mlp.up_proj"), SimpleNamespace(lower_triangle=-torch.eye(64)),
                     GPTQConfig(bits=4, group_size=32, damp_auto_increment=0.0, strict=True))
