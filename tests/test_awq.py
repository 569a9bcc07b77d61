"""AWQ: the packed format, the search results as data, folding, clipping, padding, chunking,
and held-out quality against round-to-nearest on a Qwen2-VL with activation outlier channels."""

import copy

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoProcessor, AwqConfig, Qwen2VLForConditionalGeneration

import qwen2vl_quant.algorithms.awq as awq_algorithms
from qwen2vl_quant.algorithms.awq import clip_gram, fake_quantize, fold_scales, quantize_weight, search_clip
from qwen2vl_quant.algorithms.gptq import HessianAccumulator
from qwen2vl_quant.api import quantize
from qwen2vl_quant.arch import QWEN2_VL
from qwen2vl_quant.config import AWQConfig
from qwen2vl_quant.calibration.batches import build_samples
from qwen2vl_quant.config import CalibrationConfig, GPTQConfig, RTNConfig
from qwen2vl_quant.errors import ConfigError
from qwen2vl_quant.formats.awq import awq_quantization_config, pack_awq
from qwen2vl_quant.kernels.reference import awq_unpack_cols, dequantize_awq
from qwen2vl_quant.modules.quant_linear import AWQLinear
from qwen2vl_quant.pipeline.awq_layer import (
    apply_layer_scales,
    evenly_spread_samples,
    gather_search_inputs,
    quantize_layer_awq,
    search_layer_scales,
    search_pair,
)
from qwen2vl_quant.pipeline.layerwise import capture_inputs, run_layers
from qwen2vl_quant.pipeline.runner import ErrorMeter, LayerRunner, StridedSample
from qwen2vl_quant.pipeline.source import ModelSource
from qwen2vl_quant.testing.sample_data import make_test_images, sample_conversations, unbounded
from qwen2vl_quant.testing.tiny_model import tiny_config

CPU = torch.device("cpu")
CLIPPED = ("self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def load(model_dir):
    return Qwen2VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.bfloat16).eval()


def samples_of(calib_data, processor):
    # CalibrationConfig() is what api.quantize uses, so every method sees the same samples.
    samples, _ = build_samples(calib_data, processor, CalibrationConfig())
    return samples


def layer0_inputs(model, samples):
    return capture_inputs(ModelSource(model), samples, CPU, CPU, show_progress=False)


def relative_error(got, want):
    return (sum(float((g.float() - w.float()).pow(2).sum()) for g, w in zip(got, want))
            / sum(float(w.float().pow(2).sum()) for w in want)) ** 0.5


@pytest.fixture(scope="module")
def tiny(tiny_model_dir, calib_conversations):
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = load(tiny_model_dir)
    inputs = layer0_inputs(model, samples_of(calib_conversations, processor))
    return processor, model, inputs


def fresh_layer0(model):
    return copy.deepcopy(model.get_submodule(QWEN2_VL.layers_path)[0])


# -- format, module, config ----------------------------------------------------------------


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("zero_point", [True, False])
def test_pack_roundtrip_through_the_reference_and_the_module(bits, zero_point):
    torch.manual_seed(0)
    n, k, group = 48, 256, 64
    weight = torch.randn(n, k) * torch.linspace(0.1, 3.0, k)
    qw = quantize_weight(weight, bits=bits, group_size=group, zero_point=zero_point)
    packed = pack_awq(qw.codes, qw.zeros, qw.scales, bits)
    pack = 32 // bits
    assert packed["qweight"].shape == (k, n // pack) and packed["qweight"].dtype == torch.int32
    assert packed["qzeros"].shape == (k // group, n // pack) and packed["qzeros"].dtype == torch.int32
    assert packed["scales"].shape == (k // group, n) and packed["scales"].dtype == torch.float16
    zeros = awq_unpack_cols(packed["qzeros"], bits)
    assert torch.equal(zeros, qw.zeros)  # raw zeros, no GPTQ-style offset
    if not zero_point:
        assert (zeros == 2 ** (bits - 1)).all()
    dense = dequantize_awq(packed["qweight"], packed["qzeros"], packed["scales"], group, bits, dtype=torch.float32)
    assert torch.equal(dense.T, qw.dequantize())
    torch.testing.assert_close(dense.T, fake_quantize(weight, bits=bits, group_size=group, zero_point=zero_point))
    assert relative_error([dense.T], [weight]) < (0.15 if bits == 4 else 0.01)

    module = AWQLinear(k, n, bits=bits, group_size=group, bias=True, dtype=torch.bfloat16)
    assert module.layout == "awq"
    assert set(module.state_dict()) == {"qweight", "qzeros", "scales", "bias"}
    module.load_state_dict({**packed, "bias": torch.randn(n).to(torch.bfloat16)})
    assert torch.equal(module.dequantize(), dense.T.to(torch.bfloat16))
    x = torch.randn(5, k)
    assert torch.equal(module(x), F.linear(x, dense.T.to(torch.bfloat16).float(), module.bias.float()))
    # bf16 inputs take the kernel path that loaded checkpoints use.
    want = F.linear(x, dense.T, module.bias.float())
    assert relative_error([module(x.to(torch.bfloat16))], [want]) < 1e-2


def test_config_validation_and_autoawq_dict():
    assert AWQConfig.from_dict({"zero_point": True, "q_group_size": 128, "w_bit": 4, "version": "GEMM"}) == AWQConfig()
    assert AWQConfig.from_dict({"w_bit": 8, "q_group_size": 64, "zero_point": False, "version": "gemm"}) == \
        AWQConfig(bits=8, group_size=64, zero_point=False)
    assert AWQConfig.method == "awq"
    for bad in ({"version": "GEMV"}, {"w_bit": 3}, {"q_group_size": -1}, {"q_group_size": 256},
                {"unknown": 1}, {"n_grid": 0}, {"max_shrink": 1.0}, {"chunk_tokens": 0}, {"zero_point": "yes"},
                {"w_bit": 4, "bits": 4}):
        with pytest.raises(ConfigError):
            AWQConfig.from_dict(bad)
    qc = awq_quantization_config(bits=4, group_size=128, zero_point=True, tool_version="0.1.0")
    assert qc["quant_method"] == "awq" and qc["version"] == "gemm" and qc["group_size"] == 128
    assert qc["modules_to_not_convert"] == ["visual", "model.visual"]
    parsed = AwqConfig.from_dict(qc).to_dict()  # transformers accepts it as is
    assert parsed["bits"] == 4 and parsed["zero_point"] is True and parsed["version"] == "gemm"


def test_fold_is_exact_in_float32():
    torch.manual_seed(2)
    x, norm, w1, w2 = torch.randn(7, 32), torch.rand(32) + 0.5, torch.randn(16, 32), torch.randn(8, 32)
    producer, bias = torch.randn(32, 12), torch.randn(32)
    scales = torch.rand(32) + 0.1
    folded = fold_scales(norm, None, [w1, w2], scales)
    for w, new in zip((w1, w2), folded.weights):
        torch.testing.assert_close((x * folded.prev_weight) @ new.T, (x * norm) @ w.T)
    folded = fold_scales(producer, bias, [w1], scales)  # a Linear producer: rows and bias
    h = torch.randn(5, 12)
    torch.testing.assert_close((h @ folded.prev_weight.T + folded.prev_bias) @ folded.weights[0].T,
                               (h @ producer.T + bias) @ w1.T)


def test_strided_sample_spreads_over_the_whole_stream_and_is_bounded():
    parts = [torch.arange(n).float().reshape(-1, 1) + 100 * i for i, n in enumerate((5, 0, 3, 9, 40))]
    total = sum(p.shape[0] for p in parts)
    sample = StridedSample(total, 10)
    for part in parts:
        sample.add(part)
    kept = sample.tensor().flatten().tolist()
    everything = torch.cat(parts).flatten().tolist()
    positions = [everything.index(v) for v in kept]
    assert len(kept) == 10 and positions == sorted(positions)
    assert all(5 <= b - a <= 6 for a, b in zip(positions, positions[1:]))  # total / max = 5.7 apart
    assert kept[0] < 100 and kept[-1] >= 400  # from the first batch to the last
    whole = StridedSample(total, 1000)
    for part in parts:
        whole.add(part)
    assert whole.tensor().flatten().tolist() == everything


def test_attention_samples_are_spread_and_within_the_budget():
    counts = [100] * 40
    chosen = evenly_spread_samples(counts, 1000)
    assert len(chosen) == 10 and chosen[0] == 0 and chosen[-1] >= 36 and sum(counts[i] for i in chosen) <= 1000
    assert evenly_spread_samples(counts, 10**6) == list(range(40))
    assert evenly_spread_samples([5000, 10], 100) == [0]  # always at least one sample


def test_search_reads_a_bounded_sample_and_statistics_cover_every_token(tiny):
    _, model, inputs = tiny
    total = sum(int(s.token_mask.sum()) for s in inputs)
    config = AWQConfig(bits=4, group_size=32, search_tokens=250, clip_tokens=50, exact_search_macs=0)
    gathered = gather_search_inputs(fresh_layer0(model), LayerRunner(inputs, CPU), QWEN2_VL, config)
    assert set(gathered.pairs) == {"self_attn.q_proj", "mlp.gate_proj", "mlp.down_proj"}  # v -> o: GQA
    for data in gathered.pairs.values():
        assert data.x_mean.tokens == total > 250
        seen = data.tokens.tensor().shape[0] if data.tokens else sum(x.shape[0] for x in data.samples.values())
        assert 0 < seen <= 250
    # One statistic per input: v (read with q, k), o, gate + up (one input), down.
    assert set(gathered.clip_reader) == set(CLIPPED)
    assert gathered.clip_reader["mlp.up_proj"] == gathered.clip_reader["mlp.gate_proj"] == "mlp.gate_proj"
    assert set(gathered.clip) == {"self_attn.q_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.down_proj"}
    assert all(0 < gram.tokens <= 50 for gram in gathered.clip.values())
    # Where scoring a candidate on every token is cheap (this tiny model), every token is used;
    # clip_tokens=None makes the clip statistics read every token.
    cheap = AWQConfig(bits=4, group_size=32, search_tokens=250, clip_tokens=None)
    gathered = gather_search_inputs(fresh_layer0(model), LayerRunner(inputs, CPU), QWEN2_VL, cheap)
    for data in gathered.pairs.values():
        seen = data.tokens.tensor().shape[0] if data.tokens else sum(x.shape[0] for x in data.samples.values())
        assert seen == total
    assert all(gram.tokens == total for gram in gathered.clip.values())


# -- search results are data; folding keeps the float function -----------------------------


def check_search_and_fold(layer, inputs, expected_prevs):
    runner = LayerRunner(inputs, CPU)
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    before = runner.forward_all(layer, keep_outputs=True)
    scales = search_layer_scales(layer, runner, QWEN2_VL, AWQConfig(bits=4, group_size=32))
    assert all(torch.equal(v, layer.state_dict()[k]) for k, v in state.items()), "searching modified the layer"
    assert [s.prev for s in scales.searches] == expected_prevs
    for search in scales.searches:
        # AutoAWQ's duo candidates, every ratio in [0, 1) on the grid, then the unscaled weights.
        assert [(c.duo, c.ratio) for c in search.candidates] == [(True, i / 20) for i in range(20)] + [(False, 0.0)]
        assert search.loss == min(c.loss for c in search.candidates) <= search.unscaled_loss
        assert torch.isfinite(search.scales).all() and (search.scales > 0).all()
    exact = copy.deepcopy(layer).float()  # the same fold in float32 is exact
    exact_before = runner.forward_all(exact, keep_outputs=True)
    apply_layer_scales(exact, scales)
    assert relative_error(runner.forward_all(exact, keep_outputs=True), exact_before) < 1e-5
    apply_layer_scales(layer, scales)
    for search in scales.searches:
        assert not torch.equal(layer.get_submodule(search.prev).weight, state[f"{search.prev}.weight"])
    after = runner.forward_all(layer, keep_outputs=True)
    # In bf16 only the rounding of the rescaled weights and of the activations differs; the
    # planted outlier channels make that about 0.5-1 % of the layer output.
    assert relative_error(after, before) < 2e-2
    return scales


def test_scale_search_is_data_and_folding_keeps_the_float_function(tiny):
    _, model, inputs = tiny
    scales = check_search_and_fold(fresh_layer0(model), inputs,
                                   ["input_layernorm", "post_attention_layernorm", "mlp.up_proj"])
    assert set(scales.skipped) == {"self_attn.o_proj"}


def has_video(conversation):
    return any(isinstance(m["content"], list) and any(item.get("type") == "video" for item in m["content"])
               for m in conversation)


def test_v_to_o_is_smoothed_when_shapes_allow_it(tiny, calib_conversations):
    processor, _, _ = tiny
    config = tiny_config("tiny")
    config.text_config.num_key_value_heads = config.text_config.num_attention_heads  # no GQA
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config).to(torch.bfloat16).eval()
    conversations = [c for c in calib_conversations if not has_video(c)]  # keeps the test short
    inputs = layer0_inputs(model, samples_of(conversations, processor))
    layer = fresh_layer0(model)
    with torch.no_grad():
        v_proj = layer.self_attn.v_proj
        v_proj.bias.normal_(0, 0.02)  # transformers initialises biases to zero
        # A few large value channels make o_proj's input uneven, as the tiny model's planted
        # outliers do for the other pairs, so the search has something to smooth.
        v_proj.weight[[3, 17, 40]] *= 20
        v_proj.bias[[3, 17, 40]] *= 20
    bias_before = layer.self_attn.v_proj.bias.clone()
    scales = check_search_and_fold(layer, inputs, ["input_layernorm", "self_attn.v_proj",
                                                   "post_attention_layernorm", "mlp.up_proj"])
    assert not scales.skipped
    assert scales.searches[1].ratio > 0
    assert not torch.equal(layer.self_attn.v_proj.bias, bias_before)


# -- the layer step: reports, originals, clipping ------------------------------------------


def run_step(model, inputs, config):
    layer = fresh_layer0(model)
    runner = LayerRunner(inputs, CPU)
    originals = {n: layer.get_submodule(n).weight.detach().clone() for n in QWEN2_VL.quantized_linears}
    meter = ErrorMeter(layer, dict(originals), total_tokens=sum(int(s.token_mask.sum()) for s in inputs))
    result = quantize_layer_awq(layer, 0, runner, meter, QWEN2_VL, config)
    runner.forward_all(layer, hooks={n: lambda n, x, y: meter.add(n, x, y) for n in meter.originals})
    return layer, result.reports, meter, originals


def test_layer_step_reports_skip_note_and_clip_lowers_the_error(tiny):
    _, model, inputs = tiny
    layer, reports, meter, originals = run_step(model, inputs, AWQConfig(bits=4, group_size=32))
    assert [r.name for r in reports] == list(QWEN2_VL.quantized_linears)
    assert all(isinstance(layer.get_submodule(n), AWQLinear) for n in QWEN2_VL.quantized_linears)
    notes = {r.name: r.notes for r in reports}
    assert "self_attn.v_proj -> self_attn.o_proj smoothing skipped" in notes["self_attn.o_proj"]
    assert "grouped-query attention" in notes["self_attn.o_proj"]
    assert "scales from input_layernorm" in notes["self_attn.q_proj"]
    assert all("clipped" in notes[n] for n in CLIPPED) and "clipped" not in notes["self_attn.q_proj"]
    # The meter compares against the scaled float weights W * s (one factor per input
    # column), not the original ones.
    for name in ("self_attn.q_proj", "mlp.down_proj"):
        ratio = meter.originals[name] / originals[name].float()
        assert not torch.allclose(ratio, torch.ones_like(ratio))
        torch.testing.assert_close(ratio, ratio[:1].expand_as(ratio), rtol=1e-5, atol=0)
    _, _, unclipped, _ = run_step(model, inputs, AWQConfig(bits=4, group_size=32, clip=False))
    with_clip = {n: meter.rel_error(n) for n in CLIPPED}
    without = {n: unclipped.rel_error(n) for n in CLIPPED}
    print("rel. error with / without clip:", {n: (round(with_clip[n], 4), round(without[n], 4)) for n in CLIPPED})
    assert all(0 < e < 0.2 for e in with_clip.values())
    assert sum(with_clip.values()) < 0.95 * sum(without.values())
    assert sum(w < wo for w, wo in zip(with_clip.values(), without.values())) >= len(CLIPPED) - 1


def gram_of(x):
    """The mean x^T x of tokens x [T, K], as the pipeline makes it (``clip_gram``)."""
    hessian = HessianAccumulator(x.shape[1])
    hessian.add_batch(x)
    return clip_gram(hessian)


def output_error(weight, max_val, x, group_size=32):
    """Mean over tokens of the squared output error of the clipped, quantized weight,
    summed over the rows: what the clip search's objective is with cross_groups=1."""
    q = fake_quantize(weight, bits=4, group_size=group_size, zero_point=True, max_val=max_val)
    return float((x @ (q - weight).T).pow(2).sum(1).mean())


@pytest.mark.parametrize("bf16_products", [False, True])
def test_clip_search_autoawq_ranges_and_the_cross_group_sweep(bf16_products, monkeypatch):
    monkeypatch.setattr(awq_algorithms, "_bf16_matmul_is_fast", lambda _device: bf16_products)
    monkeypatch.setattr(awq_algorithms, "BF16_SWEEP_MIN_MACS", 0)
    torch.manual_seed(1)
    # Correlated inputs: the groups' errors add up in the output, as in a real layer.
    weight, x = torch.randn(40, 128), torch.randn(300, 128) @ (torch.eye(128) + 0.3 * torch.randn(128, 128))
    gram = gram_of(x)
    autoawq = search_clip(weight, gram, bits=4, group_size=32, zero_point=True, cross_groups=0, rows_per_chunk=16)
    assert autoawq.max_val.shape == (40, 4) and 0 < autoawq.shrunk_fraction < 1
    assert autoawq.error < autoawq.unclipped_error
    org = weight.abs().reshape(40, 4, 32).amax(-1)
    assert (autoawq.max_val <= org).all() and (autoawq.max_val >= 0.5 * org - 1e-6).all()
    factors = autoawq.max_val / org
    assert torch.allclose(factors * 20, (factors * 20).round(), atol=1e-4)  # AutoAWQ's ranges, 5 % apart
    # AutoAWQ's objective: each (row, group) alone, mean over tokens of (x_g . e_g)^2.
    q = fake_quantize(weight, bits=4, group_size=32, zero_point=True, max_val=autoawq.max_val)
    per_group = (x.reshape(300, 1, 4, 32) * (q - weight).reshape(1, 40, 4, 32)).sum(-1).pow(2).mean(0).sum()
    assert autoawq.error == pytest.approx(float(per_group), rel=1e-4)
    unclipped = output_error(weight, None, x)
    assert output_error(weight, autoawq.max_val, x) < unclipped
    # The sweep with the whole output error: it starts from AutoAWQ's choice and lowers the
    # real output error (coordinate descent); AutoAWQ's own objective can only rise.
    full = search_clip(weight, gram, bits=4, group_size=32, zero_point=True, cross_groups=1, rows_per_chunk=16)
    assert output_error(weight, full.max_val, x) < 0.9 * output_error(weight, autoawq.max_val, x)
    assert full.error >= autoawq.error and full.unclipped_error == autoawq.unclipped_error
    factors = full.max_val / org
    assert torch.allclose(factors * 20, (factors * 20).round(), atol=1e-4)
    # After the sweep the last group is the best range for each row given the others (up
    # to the rounding of bf16 products).
    tolerance = 2e-3 if bf16_products else 1e-4
    for i in range(10):
        moved = full.max_val.clone()
        moved[:, -1] = org[:, -1] * (1 - i / 20)
        q = fake_quantize(weight, bits=4, group_size=32, zero_point=True, max_val=moved)
        rows_moved = (x @ (q - weight).T).pow(2).mean(0)
        q = fake_quantize(weight, bits=4, group_size=32, zero_point=True, max_val=full.max_val)
        rows_kept = (x @ (q - weight).T).pow(2).mean(0)
        assert (rows_kept <= rows_moved * (1 + tolerance) + 1e-6).all()
    half = search_clip(weight, gram, bits=4, group_size=32, zero_point=True, rows_per_chunk=7)
    assert output_error(weight, half.max_val, x) < output_error(weight, autoawq.max_val, x)


# -- padding and chunking do not change the result ------------------------------------------


def pad(inputs, extra, side, pad_id):
    """Add ``extra`` padded positions to every per-token tensor of a one-sample batch, as
    the processor does with ``padding=True`` (pad id, attention_mask 0, token type 0)."""
    padded = {}
    for key, tensor in inputs.items():
        if tensor.shape != inputs["input_ids"].shape:
            padded[key] = tensor  # pixel_values, image_grid_thw
            continue
        filler = torch.full((1, extra), pad_id if key == "input_ids" else 0, dtype=tensor.dtype)
        padded[key] = torch.cat([tensor, filler] if side == "right" else [filler, tensor], dim=1)
    return padded


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_does_not_change_the_scales(tiny, calib_conversations, side):
    processor, model, _ = tiny
    sample = samples_of(calib_conversations[1:2], processor)[0]  # one image and its answer
    padded = pad(sample.inputs, 9, side, processor.tokenizer.pad_token_id)
    config = AWQConfig(bits=4, group_size=32)
    results = []
    for batch in (sample.inputs, padded):
        inputs = layer0_inputs(model, samples_of([batch], processor))
        results.append(search_layer_scales(fresh_layer0(model), LayerRunner(inputs, CPU), QWEN2_VL, config))
    assert not padded["attention_mask"].all() and sample.inputs["attention_mask"].all()
    # Pair 1 reads the captured layer inputs, identical on real tokens: the padded positions
    # (pad-token embeddings, 9 of 68 tokens) must be in neither the statistics nor the loss.
    first, first_padded = results[0].searches[0], results[1].searches[0]
    assert torch.equal(first.scales, first_padded.scales)
    torch.testing.assert_close(torch.tensor([c.loss for c in first.candidates]),
                               torch.tensor([c.loss for c in first_padded.candidates]), rtol=1e-3, atol=0)
    # Later pairs read the attention output, computed with and without a mask: equal up to
    # bf16 rounding, which moves single quantization codes, hence the looser comparison.
    for plain, with_padding in zip(results[0].searches, results[1].searches):
        assert (plain.prev, plain.ratio, plain.duo) == (with_padding.prev, with_padding.ratio, with_padding.duo)
        torch.testing.assert_close(plain.scales, with_padding.scales, rtol=1e-3, atol=0)


def test_chunked_evaluation_gives_the_same_losses(tiny):
    _, model, inputs = tiny
    layer = fresh_layer0(model)
    runner = LayerRunner(inputs, CPU)
    token_wise = [pair for pair in QWEN2_VL.smoothing_pairs if pair.inspect in ("mlp", "mlp.down_proj")]
    assert len(token_wise) == 2 and not any(pair.mixes_tokens for pair in token_wise)
    chunked = AWQConfig(bits=4, group_size=32, chunk_tokens=64, search_tokens=None)
    unchunked = AWQConfig(bits=4, group_size=32, chunk_tokens=10**6, search_tokens=None)
    gathered = gather_search_inputs(layer, runner, QWEN2_VL, chunked)
    for pair in token_wise:
        # 64-token chunks cross sample boundaries (samples have 53 to 109 real tokens).
        data = gathered.pairs[pair.linears[0]]
        small = search_pair(layer, runner, pair, chunked, data)
        whole = search_pair(layer, runner, pair, unchunked, data)
        assert (small.ratio, small.duo) == (whole.ratio, whole.duo)
        torch.testing.assert_close(small.scales, whole.scales, rtol=1e-6, atol=0)
        torch.testing.assert_close(torch.tensor([c.loss for c in small.candidates], dtype=torch.float64),
                                   torch.tensor([c.loss for c in whole.candidates], dtype=torch.float64),
                                   rtol=1e-6, atol=0)


# -- quality on held-out samples ------------------------------------------------------------


class _NoSink:
    def layer_done(self, index, layer, reports, next_hidden):
        return None


def final_hidden(model, samples):
    with torch.inference_mode():
        return [model(**s.inputs, output_hidden_states=True).hidden_states[-1].float() for s in samples]


@pytest.fixture(scope="module")
def held_out_errors(small_model_dir, calib_conversations, tmp_path_factory):
    """Held-out relative error of the final hidden states, as tests/test_quality.py measures it."""
    processor = AutoProcessor.from_pretrained(small_model_dir)
    held_out_images = make_test_images(tmp_path_factory.mktemp("awq_held_out"), n=4, seed=7)
    held_out, _ = build_samples(sample_conversations(held_out_images)[1:], processor, unbounded())
    reference = final_hidden(load(small_model_dir), held_out)
    calibration = samples_of(calib_conversations, processor)
    errors = {}
    for bits in (4, 8):
        for name, config in (("RTN", RTNConfig(bits=bits, group_size=128)),
                             ("RTN zero-point", RTNConfig(bits=bits, group_size=128, sym=False)),
                             ("GPTQ", GPTQConfig(bits=bits, group_size=128)),
                             ("AWQ", AWQConfig(bits=bits, group_size=128))):
            model = load(small_model_dir)
            if isinstance(config, AWQConfig):
                source = ModelSource(model)
                inputs = capture_inputs(source, calibration, CPU, CPU, show_progress=False)
                step = lambda layer, index, runner, meter, progress: quantize_layer_awq(  # noqa: E731
                    layer, index, runner, meter, QWEN2_VL, config)
                run_layers(source, inputs, step, _NoSink(), device=CPU, store_device=CPU,
                           show_progress=False)
            else:
                quantize(model, calib_conversations, config, processor=processor, calibration=CalibrationConfig(),
                         device="cpu", show_progress=False)
            errors[name, bits] = relative_error(final_hidden(model, held_out), reference)
        print(f"int{bits} g128 held-out rel. error: " + "  ".join(
            f"{name} {errors[name, bits]:.4f}" for name in ("RTN", "RTN zero-point", "GPTQ", "AWQ")))
    return errors


@pytest.mark.parametrize("bits", [4, 8])
def test_awq_error_is_clearly_below_round_to_nearest(bits, held_out_errors):
    awq = held_out_errors["AWQ", bits]
    # AWQ's grid has a zero point: compare with round-to-nearest on the same grid, the
    # stronger of the two RTN baselines here, as well as with the symmetric default.
    assert awq < 0.85 * held_out_errors["RTN zero-point", bits], held_out_errors
    assert awq < 0.85 * held_out_errors["RTN", bits], held_out_errors


def test_clip_gram_is_the_mean_gram_and_folds_scales():
    """clip_gram of the Hessian accumulated batch by batch = x^T x / T; with scales, the
    Gram matrix of x / s (the folded Linear's inputs)."""
    torch.manual_seed(3)
    x, s = torch.randn(300, 64), torch.rand(64) + 0.5
    hessian = HessianAccumulator(64)
    for part in x.split([7, 100, 193]):
        hessian.add_batch(part)
    assert hessian.tokens == 300
    torch.testing.assert_close(clip_gram(hessian), x.T @ x / 300, rtol=1e-4, atol=1e-5)
    # The matrix was handed over and changed in place: the accumulator is spent.
    for use in (lambda: clip_gram(hessian), lambda: hessian.hessian, lambda: hessian.add_batch(x)):
        with pytest.raises(RuntimeError, match="handed over"):
            use()
    hessian = HessianAccumulator(64)
    hessian.add_batch(x)
    torch.testing.assert_close(clip_gram(hessian, s), gram_of(x / s), rtol=1e-4, atol=1e-6)
