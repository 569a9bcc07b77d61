"""Held-out quality of one quantization config, measured in-process, for the small studies
(awq_search_budget.py, act_order_error.py):

- ``small_model_error``: a random-weight test model quantized in memory; relative error of
  the final hidden states on held-out conversations (none shared with the calibration set),
  in float32, as vs_gptqmodel.py measures it;
- ``small_vlm_quality``: the committed small trained VLM quantized to a checkpoint; KL to
  BF16 and exact-match accuracy on its 200 held-out questions, as the CI benchmark measures.
"""

from __future__ import annotations

import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def small_model_error(model_dir: Path, calib: Path, held_out: Path, samples: int, config) -> tuple[float, float]:
    """(relative error of the final hidden states on the held-out set, quantization seconds)."""
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from qwen2vl_quant import CalibrationConfig, quantize

    from .data import image_paths, local_path, read_jsonl

    processor = AutoProcessor.from_pretrained(model_dir)
    inputs = []
    for conversation in read_jsonl(held_out):
        text = processor.apply_chat_template(conversation, tokenize=False)
        images = [Image.open(local_path(p)).convert("RGB") for p in image_paths([conversation])]
        inputs.append(processor(text=[text], images=images, return_tensors="pt"))

    def final_hidden(model):
        with torch.inference_mode():
            return [model.model(**x).last_hidden_state.float() for x in inputs]

    load = AutoModelForImageTextToText.from_pretrained
    reference = final_hidden(load(model_dir, dtype=torch.float32).eval())
    model = load(model_dir, dtype=torch.bfloat16).eval()
    started = time.perf_counter()
    quantize(model, str(calib), config, processor=processor, calibration=CalibrationConfig(num_samples=samples),
             device="cpu", show_progress=False)
    seconds = time.perf_counter() - started
    got = final_hidden(model.float())
    num = sum(float((g - w).pow(2).sum()) for g, w in zip(got, reference, strict=True))
    den = sum(float(w.pow(2).sum()) for w in reference)
    return (num / den) ** 0.5, seconds


def small_vlm_quality(work: Path, samples: int, config) -> dict:
    """KL to BF16, held-out accuracy and quantization seconds of the small trained VLM."""
    from qwen2vl_quant import CalibrationConfig, quantize_checkpoint
    from qwen2vl_quant.benchmark import QualityConfig, run_benchmark

    model = HERE / "models" / "small-vlm"
    out = work / "small-vlm-quantized"
    started = time.perf_counter()
    quantize_checkpoint(model, out, config, calib_data=model / "calib.jsonl",
                        calibration=CalibrationConfig(num_samples=samples), device="cpu", overwrite=True,
                        show_progress=False)
    seconds = time.perf_counter() - started
    report = run_benchmark(model, [f"Q={out}"], quality=QualityConfig(vqa=str(model / "heldout_vqa.jsonl"),
                                                                      max_new_tokens=8),
                           device="cpu", threads=2, show_progress=False)
    row = {r.quantization: r for r in report.quality}["Q"]
    return {"kl": row.kl, "accuracy": row.exact_match, "seconds": seconds}
