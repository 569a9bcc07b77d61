"""Loading through ``DefaultModelLoader.load_model`` and the model's own ``load_weights``
with vLLM's strict weight tracking on, plus a sentinel check of every parameter element;
and the planted bugs each of these checks must catch."""

from __future__ import annotations

import pytest

from vllm_harness import (
    load_problems,
    sym_qzeros_problems,
    value_problems,
    vision_problems,
)

DROPPED = {"gptq": (".g_idx",), "awq": ()}  # tensors vLLM discards on purpose


def test_strict_load(good_checkpoint, loads, manifest):
    result = loads.ok(good_checkpoint)
    assert result.vllm_config.load_config.model_loader_extra_config["enable_weights_track"] is True
    assert load_problems(result, DROPPED[manifest[good_checkpoint]["method"]]) == []


def test_loaded_values_equal_checkpoint(good_checkpoint, loads, checkpoints):
    """qweight/qzeros/scales of every decoder Linear, as vLLM loaded them, are the
    checkpoint's tensors (fused q/k/v and gate/up concatenated along the output dim)."""
    assert value_problems(checkpoints / good_checkpoint, loads.ok(good_checkpoint)) == []


def test_sym_gptq_qzeros(good_checkpoint, loads, checkpoints, manifest):
    """Symmetric GPTQ stores exactly the zero point vLLM assumes (it ignores qzeros)."""
    if manifest[good_checkpoint]["method"] != "gptq":
        pytest.skip("AWQ checkpoints carry real zero points, which vLLM reads")
    assert sym_qzeros_problems(checkpoints / good_checkpoint, loads.ok(good_checkpoint)) == []


def test_tracking_off_hides_a_missing_tensor(loads):
    """Why the tier turns tracking on: with vLLM's default for quantized models (off), a
    checkpoint without layer 0's o_proj.qzeros loads without a word."""
    result = loads.get("broken-gptq-missing-qzeros", track_weights=False)
    assert not isinstance(result, Exception), result
    assert any("o_proj.qzeros" in p for p in load_problems(result, (".g_idx",)))


def test_broken_checkpoint_rejected(broken_checkpoint, loads, checkpoints, manifest):
    """Each planted bug (of every family) is caught by the check the manifest names, and
    that check names the planted tensor or Linear (``target``)."""
    entry = manifest[broken_checkpoint]
    check, target = entry["caught_by"], entry.get("target")
    result = loads.get(broken_checkpoint)
    if check == "vllm-load-error":
        assert isinstance(result, Exception), "vLLM loaded it"
        return
    if check == "vllm-weight-tracking":
        assert isinstance(result, ValueError), f"vLLM's tracking did not raise: {result!r}"
        assert "were not initialized from checkpoint" in str(result)
        assert target in str(result)
        return
    assert not isinstance(result, Exception), f"vLLM already refuses it: {result!r}"
    if check == "unfilled-parameter":
        problems = load_problems(result, DROPPED[entry["method"]])
        assert any(target in p and "never written" in p for p in problems), problems
    elif check == "vision-quant-method":
        problems = vision_problems(result)
        assert any(p.startswith(f"{target}:") for p in problems), problems
    elif check == "sym-qzeros":
        problems = sym_qzeros_problems(checkpoints / broken_checkpoint, result)
        assert problems and all("are not 7" in p for p in problems), problems
    else:
        pytest.fail(f"unknown check {check}")
