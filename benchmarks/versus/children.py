"""The child processes: each tool's command, GPTQModel's documented flow, and the float32
evaluation of every checkpoint against the BF16 model."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from .data import image_paths, local_path, read_jsonl
from .settings import METHODS, SCRIPT, Method


def ours_command(method: Method, model_dir: Path, calib: Path, out_dir: Path, samples: int) -> list[str]:
    """Our CLI, exactly as a user runs it; every option that matters is spelled out."""
    return [sys.executable, "-m", "qwen2vl_quant.cli", *method.our_args, "--calib", str(calib),
            "--num-samples", str(samples), "--device", "cpu", "--overwrite", str(model_dir), str(out_dir)]


def gptqmodel_command(method: Method, model_dir: Path, calib: Path, out_dir: Path, samples: int,
                      info: Path) -> list[str]:
    return [sys.executable, str(SCRIPT), "--child", "gptqmodel", "--method", method.name, "--model-dir",
            str(model_dir), "--calib", str(calib), "--samples", str(samples), "--out", str(out_dir), "--info", str(info)]


FIELDS = ("bits", "group_size", "sym", "desc_act", "act_group_aware", "damp_percent", "damp_auto_increment",
          "true_sequential", "static_groups", "mse", "offload_to_disk", "format", "method", "fallback")


def gptqmodel_config(method: Method):
    """(GPTQModel's default config of the method, the config used here)."""
    if method.name == "gptq":
        from gptqmodel.quantization.config import GPTQConfig

        # sym, no act-order: desc_act off, and GPTQModel's own group-aware activation
        # reordering (act_group_aware, on by default for GPTQ) off too. The rest: defaults.
        return GPTQConfig(), GPTQConfig(bits=4, group_size=128, sym=True, desc_act=False, act_group_aware=False,
                                        damp_percent=0.01)
    from gptqmodel.quantization.config import AWQConfig

    # Zero points are sym=False in GPTQModel (its AWQConfig ignores zero_point=True);
    # format GEMM as ours. The rest (n_grid 20, duo scaling, clip search): defaults.
    return AWQConfig(), AWQConfig(bits=4, group_size=128, sym=False, format="gemm")


def child_gptqmodel(args: argparse.Namespace) -> int:
    """GPTQModel's documented flow: GPTQModel.load(model, config); model.quantize(conversations,
    batch_size=1); model.save(out). Records its defaults and the stage times in --info."""
    t0 = time.perf_counter()
    from gptqmodel import GPTQModel

    stages = {"import_s": time.perf_counter() - t0}
    default, config = gptqmodel_config(METHODS[args.method])
    defaults = {f: str(getattr(default, f, None)) for f in FIELDS}
    used = {f: str(getattr(config, f, None)) for f in FIELDS}
    conversations = read_jsonl(args.calib)[: args.samples]
    t = time.perf_counter()
    model = GPTQModel.load(str(args.model_dir), config)
    stages["load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    model.quantize(conversations, batch_size=1)
    stages["quantize_s"] = time.perf_counter() - t
    t = time.perf_counter()
    if args.out.exists():
        shutil.rmtree(args.out)
    model.save(str(args.out))
    stages["save_s"] = time.perf_counter() - t
    stages = {k: round(v, 1) for k, v in stages.items()}
    import torch

    # Where GPTQModel ran on a GPU (benchmarks/gpu_check.py), its peak allocation there.
    peak_cuda = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    Path(args.info).write_text(json.dumps({"defaults": defaults, "used": used, "stages": stages,
                                           "peak_cuda_bytes": peak_cuda,
                                           "samples": len(conversations)}, indent=1))
    print(f"GPTQModel stages: {stages}", flush=True)
    return 0


def child_eval(args: argparse.Namespace) -> int:
    """Relative error of the final hidden states of each checkpoint against the BF16 model."""
    import gc

    import torch
    from PIL import Image
    from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

    from qwen2vl_quant.loading import load_quantized
    from qwen2vl_quant.modules.quant_linear import QuantLinear

    dtype = getattr(torch, args.eval_dtype)
    processor = AutoProcessor.from_pretrained(args.model_dir)
    inputs = []
    for conv in read_jsonl(args.heldout):
        text = processor.apply_chat_template(conv, tokenize=False, add_generation_prompt=False)
        images = [Image.open(local_path(p)).convert("RGB") for p in image_paths([conv])]
        inputs.append(processor(text=[text], images=images, return_tensors="pt"))
    tokens = [int(x["input_ids"].numel()) for x in inputs]
    image_tokens = [int((x["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum()) for x in inputs]

    def cast(x):
        return {k: v.to(dtype) if v.is_floating_point() else v for k, v in x.items()}

    def final_hidden(model):
        outs = []
        with torch.inference_mode():
            for x in inputs:
                outs.append(model.model(**cast(x)).last_hidden_state.float())
        return outs

    def vision_fingerprint(model):
        # Float64 sums of every vision-tower parameter: equal iff kept bit for bit (practically).
        with torch.inference_mode():
            return torch.stack([torch.stack([p.double().sum(), p.double().abs().sum()])
                                for p in model.model.visual.parameters()])

    times = {}
    t = time.perf_counter()
    reference = Qwen2VLForConditionalGeneration.from_pretrained(args.model_dir, dtype=dtype).eval()
    times["reference_load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    want = final_hidden(reference)
    times["reference_forward_s"] = time.perf_counter() - t
    vision_ref = vision_fingerprint(reference)
    del reference
    gc.collect()

    results = {}
    for spec in args.checkpoint:
        name, path = spec.split("=", 1)
        t = time.perf_counter()
        model = load_quantized(path, dtype=dtype)
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        got = final_hidden(model)
        forward_s = time.perf_counter() - t
        num = sum(float((g - w).pow(2).sum()) for g, w in zip(got, want))
        den = sum(float(w.pow(2).sum()) for w in want)
        per_sample = [float((g - w).norm() / w.norm()) for g, w in zip(got, want)]
        quantized = sum(isinstance(m, QuantLinear) for m in model.modules())
        vision_same = bool(torch.equal(vision_fingerprint(model), vision_ref))
        results[name] = {"rel_error": num ** 0.5 / den ** 0.5, "rel_error_per_sample": per_sample,
                         "quantized_linears": quantized, "vision_tower_identical": vision_same,
                         "qconfig": model.config.quantization_config, "load_s": round(load_s, 1),
                         "forward_s": round(forward_s, 1)}
        print(f"{name}: held-out rel. error {results[name]['rel_error']:.5f} "
              f"(per sample {', '.join(f'{e:.4f}' for e in per_sample)}); {quantized} quantized linears; "
              f"vision tower identical to BF16: {vision_same}", flush=True)
        del model, got
        gc.collect()
    Path(args.info).write_text(json.dumps({"dtype": args.eval_dtype, "samples": len(inputs), "tokens": tokens,
                                           "image_tokens": image_tokens, "times": {k: round(v, 1) for k, v in times.items()},
                                           "results": results}, indent=1))
    return 0
