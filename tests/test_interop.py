"""Our checkpoints load in transformers through its own GPTQ support (optimum + gptqmodel),
on CPU, and compute what our loader computes; the vision tower stays plain BF16 there.

gptqmodel's default CPU kernel for 4-bit is JIT-compiled on first use (one to three minutes
on two cores); the tests ask for its pure-torch backend, which reads the same tensors.
"""

import json
import math
import os

import pytest
import torch

os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")

# The test extra installs both: a missing one is an error here, never a silent skip.
import gptqmodel  # noqa: E402, F401
import optimum  # noqa: E402, F401

from transformers import AutoProcessor, Qwen2VLForConditionalGeneration  # noqa: E402
from transformers import AwqConfig as HFAwqConfig  # noqa: E402
from transformers import GPTQConfig as HFGPTQConfig  # noqa: E402

from qwen2vl_quant.cli import main  # noqa: E402
from qwen2vl_quant.loading import load_quantized  # noqa: E402
from qwen2vl_quant.modules.quant_linear import QuantLinear  # noqa: E402

pytestmark = pytest.mark.interop

# Unit roundoff of float16: gptqmodel's torch kernels dequantize into float16 (GPTQ and AWQ),
# and its AWQ kernel also rounds the activations and the outputs to float16.
U16 = 2.0**-11

CASES = {
    "gptq-int4-g32": ["gptq", "--bits", "4", "--group-size", "32"],
    "gptq-int4-asym-act-order-dynamic": ["gptq", "--bits", "4", "--group-size", "32", "--asym", "--desc-act",
                                         "--dynamic-groups"],
    "gptq-int8-g64-act-order": ["gptq", "--bits", "8", "--group-size", "64", "--desc-act"],
    "awq-int4-g32": ["awq", "--bits", "4", "--group-size", "32"],
    "awq-int8-g64": ["awq", "--bits", "8", "--group-size", "64"],
}


@pytest.fixture(scope="module")
def calib(tmp_path_factory, calib_conversations):
    path = tmp_path_factory.mktemp("calib") / "calib.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in calib_conversations))
    return path


def their_dense_weight(module):
    """gptqmodel's own dequantization of one of its quantized Linears: [K, N] float16."""
    if hasattr(module, "dequantize_weight"):  # GPTQ TorchLinear
        return module.dequantize_weight()
    probe = torch.zeros(1, module.in_features, dtype=torch.float16)  # AwqTorchLinear
    return module._dequantize_weight_for_inference(probe, dtype=torch.float16)


def image_inputs(model_dir, image):
    processor = AutoProcessor.from_pretrained(model_dir)
    messages = [{"role": "user", "content": [{"type": "image", "image": str(image)},
                                             {"type": "text", "text": "What is in the picture?"}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    from PIL import Image

    return processor(text=[text], images=[Image.open(image).convert("RGB")], return_tensors="pt")


@pytest.mark.parametrize("case", list(CASES))
def test_transformers_loads_our_checkpoint(case, tiny_model_dir, calib, test_images, tmp_path):
    out = tmp_path / case
    method, *options = CASES[case]
    assert main([method, *options, "--calib", str(calib), "--quiet", str(tiny_model_dir), str(out)]) == 0
    bits = int(options[1])
    backend = (HFGPTQConfig(bits=bits, backend="gptq_torch") if method == "gptq"
               else HFAwqConfig(bits=bits, backend="torch_awq"))
    # float32 on both sides, so that the comparison sees the quantized weights, not bf16 noise.
    theirs = Qwen2VLForConditionalGeneration.from_pretrained(
        out, device_map="cpu", dtype=torch.float32,
        quantization_config=backend,
    ).eval()
    ours = load_quantized(out, dtype=torch.float32)
    q_proj = theirs.model.language_model.layers[0].self_attn.q_proj
    assert "gptqmodel" in type(q_proj).__module__, type(q_proj)
    for block in theirs.model.visual.blocks:
        assert type(block.attn.qkv) is torch.nn.Linear and type(block.mlp.fc1) is torch.nn.Linear
    assert type(theirs.lm_head) is torch.nn.Linear
    in_bf16 = Qwen2VLForConditionalGeneration.from_pretrained(out, device_map="cpu", quantization_config=backend)
    assert in_bf16.model.visual.blocks[0].attn.qkv.weight.dtype == torch.bfloat16

    inputs = image_inputs(tiny_model_dir, test_images[0])
    with torch.inference_mode():
        their_logits = theirs(**inputs).logits.float()
        our_logits = ours(**inputs).logits.float()
        their_vision = theirs.model.visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"])
    assert torch.isfinite(their_logits).all()
    # The format itself is checked exactly: every dequantized weight is ours rounded to float16.
    linears = [(name, module) for name, module in ours.named_modules() if isinstance(module, QuantLinear)]
    assert len(linears) == 7 * len(ours.model.language_model.layers)
    for name, module in linears:
        assert torch.equal(their_dense_weight(theirs.get_submodule(name)).float(), module.dequantize().T.half().float()), name
    # The logits differ only by those float16 roundings: about one unit roundoff of relative
    # error per quantized Linear (weights, and for AWQ the inputs and outputs), independent
    # from Linear to Linear, so they add up like sqrt(n); 4x that is the bound.
    relative = float((their_logits - our_logits).norm() / our_logits.norm())
    assert relative < 4 * U16 * math.sqrt(len(linears)), relative
    # ... while quantization itself moved the logits far more than that (not a no-op load).
    original = Qwen2VLForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    with torch.inference_mode():
        float_logits = original(**inputs).logits.float()
    assert float((float_logits - our_logits).norm() / our_logits.norm()) > 10 * relative
    # A random model has near-ties; the top token may flip where two logits are within 1e-3.
    agreement = float((their_logits.argmax(-1) == our_logits.argmax(-1)).float().mean())
    assert agreement > 0.9, agreement
    pooled = their_vision.pooler_output if hasattr(their_vision, "pooler_output") else their_vision
    assert torch.isfinite(pooled).all()
