"""End to end on CPU: a quantized model generates the same greedy tokens with the fast
kernel paths (the C++ kernels: fused GEMV and the GEMMs, BF16 dot products and float32
FMAs, each forced to take the decode steps once, the GEMMs or the dequantized blocks for
prompts; and, where no compiler is present, torch's int4/int8 ops) as with the reference
path (dequantize to the compute dtype, then matmul) -- issues 7 and 17.

Uses the committed small VLM trained on benchmarks/shapes_task.py: its answers are
confident, so equal tokens test the kernels, not a coin flip between near-tied logits.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from qwen2vl_quant import CalibrationConfig, GPTQConfig, load_quantized, quantize_checkpoint
from qwen2vl_quant.kernels import cpu_fused
from qwen2vl_quant.modules.quant_linear import QuantLinear
from qwen2vl_quant.pipeline.source import load_processor

MODEL = Path(__import__("os").environ.get("SMALL_VLM", Path(__file__).resolve().parents[1] / "benchmarks" / "models" / "small-vlm"))
NEW_TOKENS = 12


@pytest.fixture(scope="module")
def prompts():
    processor = load_processor(MODEL)
    rows = [json.loads(line) for line in (MODEL / "heldout_vqa.jsonl").read_text().splitlines()[:6]]
    batches = []
    for row in rows:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": row["question"]}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True)
        image = Image.open(MODEL / row["image"]).convert("RGB")
        batches.append(processor(text=[text], images=[image], return_tensors="pt"))
    return batches


def generate(model, prompts) -> list[list[int]]:
    out = []
    with torch.inference_mode():
        for inputs in prompts:
            # Up to the end of the answer: past <|im_end|> the model is off its training
            # distribution and near-tied logits make the continuation arbitrary.
            ids = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False)
            out.append(ids[0, inputs["input_ids"].shape[1]:].tolist())
    return out


def record_paths(model) -> tuple[dict[str, int], list]:
    """Count which kernel path each quantized Linear call took."""
    seen: dict[str, int] = {}

    def hook(module, args):
        rows = args[0].reshape(-1, args[0].shape[-1]).shape[0]
        path = module.path_for(rows) if module.kernel_path == "auto" else module.kernel_path
        seen[path] = seen.get(path, 0) + 1

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, QuantLinear)]
    return seen, handles


# torch's int8 op takes one scale per output channel: grouped Int8 runs it once per group
# (kernels/cpu.py). With the C++ kernels, the switch between gemv and gemm (measured per
# shape at load: on the small model the gemm often wins from one row on) is forced, so that
# each kernel takes the decode steps in some case; so is the switch to the dequantized blocks
# (measured once per process: never here), so that they take the prompts in some. The prompts
# (51-59 tokens) are shorter than DEQUANTIZED_PANEL_ROWS: gemm "dequantized" lowers it, so
# that the BF16-dot GEMM's dequantized panel takes them in some cases and its panel of codes
# ("codes") in others; "float32" forces the GEMM with float32 FMAs (whichever dot_rates()
# picks on this CPU).
@pytest.mark.parametrize("bits, group_size, decode_path, prefill_path, cpp, gemm", [
    (4, 128, "cpu_gemv", "cpu_gemm", True, "codes"),
    (4, 128, "cpu_gemv", "cpu_gemm", True, "dequantized"),
    (4, 128, "cpu_gemv", "cpu_gemm", True, "float32"),
    (4, 128, "cpu_gemm", "cpu_gemm", True, "codes"),
    (4, 128, "cpu_gemv", "cpu_dequant", True, "codes"),
    (8, -1, "cpu_gemv", "cpu_gemm", True, "dequantized"),
    (8, -1, "cpu_gemv", "cpu_gemm", True, "float32"),
    (8, 128, "cpu_gemv", "cpu_gemm", True, "codes"),
    (8, 128, "cpu_gemm", "cpu_gemm", True, "dequantized"),
    (8, 128, "cpu_gemm", "cpu_gemm", True, "float32"),
    (8, 128, "cpu_gemm", "cpu_dequant", True, "codes"),
    (4, 128, "cpu_int4", None, False, None),  # prompts take cpu_int4 or torch_dequant by length
    (8, 128, "cpu_int8", None, False, None),
])
def test_fast_path_generates_the_reference_tokens(tmp_path, prompts, bits, group_size, decode_path, prefill_path,
                                                  cpp, gemm, monkeypatch):
    if not cpp:
        monkeypatch.setenv(cpu_fused.DISABLE_ENV, "1")
    else:
        rows = cpu_fused.FUSED_GEMV_MAX_M if decode_path == "cpu_gemv" else 0
        monkeypatch.setattr(cpu_fused, "gemv_switch", lambda weight: rows)
        dense_from = cpu_fused.FUSED_GEMV_MAX_M + 1 if prefill_path == "cpu_dequant" else 10**9
        monkeypatch.setattr(cpu_fused, "dense_switch", lambda: dense_from)
        # dispatch asks for the dense switch only from the fewest rows it can name
        monkeypatch.setattr(cpu_fused, "DENSE_PROBE_M", (dense_from,))
        monkeypatch.setattr(cpu_fused, "_float32_gemm", {"chosen": gemm == "float32"})
        if gemm == "dequantized":
            monkeypatch.setattr(cpu_fused, "DEQUANTIZED_PANEL_ROWS", cpu_fused.FUSED_GEMV_MAX_M + 1)
    out = tmp_path / f"gptq-{bits}-{group_size}"
    quantize_checkpoint(MODEL, out, GPTQConfig(bits=bits, group_size=group_size), calib_data=MODEL / "calib.jsonl",
                        calibration=CalibrationConfig(num_samples=8), show_progress=False)
    model = load_quantized(out).eval()

    seen, handles = record_paths(model)
    fast = generate(model, prompts)
    for handle in handles:
        handle.remove()
    # Every decode step (one row) of the 7 x 4 quantized Linears took the decode path.
    decode_steps = sum(len(tokens) - 1 for tokens in fast)
    assert decode_steps >= len(prompts)
    assert seen.get(decode_path, 0) >= decode_steps * 7 * 4
    if prefill_path:  # every prompt is longer than the switch point
        assert seen.get(prefill_path, 0) >= len(prompts) * 7 * 4
    assert "reference" not in seen

    for module in model.modules():
        if isinstance(module, QuantLinear):
            module.kernel_path = "reference"
    reference = generate(model, prompts)
    assert fast == reference
    end = load_processor(MODEL).tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert all(tokens[-1] == end for tokens in fast)  # whole answers, not cut off
