"""Write every checkpoint the vLLM interop tier (issue 14) loads, good and broken.

Runs in the MAIN venv (our package, transformers 5.25); the tests that read the result run
in the separate vLLM venv (.ci/vllm_tier.sh):

    .venv/bin/python tests/vllm/make_checkpoints.py OUT_DIR

OUT_DIR gets one sub-directory per checkpoint and a ``manifest.json`` that says, for each,
how it was made and what vLLM must do with it ("accept" or "reject", and which check
should catch it). Deterministic: the same command writes the same bytes.

The test models
---------------
One per family, all in the preset "vllm": Qwen2-VL (``base``, and ``base-newkeys``, the
same weights under the newer key style), Qwen2.5-VL (``qwen2_5_vl-base``, older keys as
its checkpoints have) and Qwen3-VL dense (``qwen3_vl-base``, newer keys, the only style it
has). The Qwen2-VL preset is defined here: hidden 512, 4 heads of 128 (as every real Qwen2-VL size),
2 KV heads, MLP intermediate 1152 = 9 x 128, 2 decoder layers, vocab 1024, a 2-block vision
tower of width 256 with 8 heads (vLLM shards the vision tower too, so its head count must
divide by the tensor-parallel degree, as Qwen2-VL's 16 heads do). Every K is a multiple of
128 and of the group size; every output slice vLLM's Marlin/Machete kernels see stays
divisible by 128 (Machete) up to 4-way tensor parallelism
(q 512/4 = 128, k/v one KV head of 128 per GPU, o_proj K 512/4 = 128), which the
"small" preset (head_dim 64: o_proj K 256/4 = 64) does not give. 1152 is not divisible
by 2 * 128 or 4 * 128, so the ``--tensor-parallel`` outputs really are padded (1280 for 2,
1536 for 4). The preset is registered at runtime in ``tiny_model.PRESETS`` (where it now
also is). The other two families take ``testing/tiny_families.py``'s "vllm" preset: the
same decoder widths (hidden 512, head_dim 128, intermediate 1152, 2 layers) and a 2-block
vision tower of width 256 with 8 heads; Qwen3-VL with 8 heads of 128 (1024 != 512, as on
Qwen3-VL-4B/32B), q_norm/k_norm and DeepStack mergers from both vision blocks.

Checkpoints of the new families are named ``{family}-{name}`` (``qwen3_vl-gptq-int4``);
Qwen2-VL's keep their names. Per family: GPTQ Int4, GPTQ Int8, AWQ Int4 and a
``--tensor-parallel 2`` GPTQ Int4 (Qwen2-VL also act-order, TP 4 and the newer key style).

Broken checkpoints
------------------
Copies of good ones with one tensor edited, to show the checks can fail:
- ``broken-{gptq,awq}-missing-qzeros``: layer 0 ``o_proj.qzeros`` removed. vLLM's own
  strict weight tracking must notice (with tracking off, vLLM's default for quantized
  models, it loads with the parameter left as uninitialized memory).
- ``broken-{gptq,awq}-missing-qzeros-fused``: layer 0 ``q_proj.qzeros`` removed. vLLM's
  tracking counts the fused qkv_proj.qzeros as loaded once the k/v shards arrive, so only
  the tier's sentinel check (parameter elements no weight loader wrote) notices.
- ``broken-gptq-qweight-wrong-axis``: layer 0 ``down_proj.qweight`` packed along N
  ([K, N/8]) instead of along K ([K/8, N]).
- ``broken-awq-qweight-wrong-axis``: layer 0 ``down_proj.qweight`` packed along K.
- ``broken-gptq-quantized-vision``: ``visual.blocks.0.attn.qkv`` stored as GPTQ tensors.
- ``broken-awq-quantized-vision``: the same in the AWQ checkpoint.
- ``broken-gptq-qzeros-v2``: sym Int4 whose qzeros hold the raw midpoint 8 instead of
  v1's 8 - 1 = 7 (vLLM ignores qzeros for sym GPTQ, so it loads; our qzeros test fails).
- ``qwen3_vl-broken-gptq-missing-qzeros`` / ``-fused``, ``qwen2_5_vl-broken-awq-missing-qzeros``:
  as above, in those families' checkpoints (newer / older key style).
- ``qwen3_vl-broken-{gptq,awq}-quantized-deepstack``: ``visual.deepstack_merger_list.0.linear_fc1``
  (a DeepStack merger Linear, K 1024) stored as quantized tensors.
- ``qwen2_5_vl-broken-gptq-quantized-vision-mlp``: ``visual.blocks.0.mlp.down_proj``
  (the vision SwiGLU MLP, whose Linears carry the decoder's names) stored as GPTQ tensors.
- ``qwen2_5_vl-broken-gptq-qweight-wrong-axis``: as the Qwen2-VL one.

Each manifest entry names its ``family``, the check that must reject a broken copy
(``caught_by``) and what that check must name (``target``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from qwen2vl_quant.testing import tiny_model
from qwen2vl_quant.testing.tiny_families import FAMILY_PRESETS, build_tiny_model
from qwen2vl_quant.api import quantize_checkpoint
from qwen2vl_quant.config import AWQConfig
from qwen2vl_quant.config import CalibrationConfig, GPTQConfig
from qwen2vl_quant.formats.gptq import pack_gptq
from qwen2vl_quant.kernels.reference import pack_cols, pack_rows

PRESET = "vllm"
PRESET_SHAPES = tiny_model.Preset(
    hidden=512, layers=2, heads=4, kv_heads=2, intermediate=1152, vision_depth=2, vision_dim=256,
    vision_heads=8, mrope_section=(16, 24, 24), vocab_size=1024, tie_word_embeddings=False,
    image_pixels=(56 * 56, 28 * 28 * 64), video_pixels=(56 * 56, 28 * 28 * 64),
)
NUM_SAMPLES = 4
# At most 64 visual tokens per image: the format, not the accuracy, is under test here.
MAX_PIXELS = 64 * 28 * 28

# The new families' checkpoints are prefixed with the family; Qwen2-VL's are not.
NEW_FAMILIES = ("qwen2_5_vl", "qwen3_vl")
FAMILIES = ("qwen2_vl", *NEW_FAMILIES)


def family_name(family: str, name: str) -> str:
    """The checkpoint ``name`` (e.g. "gptq-int4") of ``family`` in the output folder."""
    return name if family == "qwen2_vl" else f"{family}-{name}"


# base model -> family (each built by build_base)
BASES = {"base": "qwen2_vl", "base-newkeys": "qwen2_vl",
         **{family_name(f, "base"): f for f in NEW_FAMILIES}}

# What every family gets: name -> (config factory, tensor_parallel)
PER_FAMILY = {
    "gptq-int4": (lambda: GPTQConfig(bits=4, group_size=128), None),
    "gptq-int8": (lambda: GPTQConfig(bits=8, group_size=128), None),
    "awq-int4": (lambda: AWQConfig(bits=4, group_size=128), None),
    "gptq-int4-tp2": (lambda: GPTQConfig(bits=4, group_size=128), 2),
}

# name -> (base model, config factory, tensor_parallel)
GOOD = {
    "gptq-int4": ("base", *PER_FAMILY["gptq-int4"]),
    "gptq-int8": ("base", *PER_FAMILY["gptq-int8"]),
    "awq-int4": ("base", *PER_FAMILY["awq-int4"]),
    "gptq-int4-actorder": ("base", lambda: GPTQConfig(bits=4, group_size=128, desc_act=True, static_groups=True), None),
    "gptq-int4-tp2": ("base", *PER_FAMILY["gptq-int4-tp2"]),
    "awq-int4-tp4": ("base", lambda: AWQConfig(bits=4, group_size=128), 4),
    "gptq-int4-tp4": ("base", lambda: GPTQConfig(bits=4, group_size=128), 4),
    "gptq-int4-newkeys": ("base-newkeys", lambda: GPTQConfig(bits=4, group_size=128), None),
    "awq-int4-newkeys": ("base-newkeys", lambda: AWQConfig(bits=4, group_size=128), None),
    **{family_name(f, name): (family_name(f, "base"), config, tp)
       for f in NEW_FAMILIES for name, (config, tp) in PER_FAMILY.items()},
}

log = logging.getLogger("make_checkpoints")


def register_preset() -> None:
    """Add the preset to tiny_model.PRESETS for this process (see the module docstring)."""
    known = tiny_model.PRESETS.setdefault(PRESET, PRESET_SHAPES)
    if known != PRESET_SHAPES:
        raise RuntimeError(f"tiny_model.PRESETS[{PRESET!r}] is {known}, this tier needs {PRESET_SHAPES}")


# ---------------------------------------------------------------------------------------------
# safetensors editing: a checkpoint directory as {key: tensor}, written back with its index
# ---------------------------------------------------------------------------------------------

def read_tensors(model_dir: Path) -> dict[str, tuple[str, torch.Tensor]]:
    """key -> (shard file name, tensor) over every shard of a checkpoint."""
    out = {}
    for shard in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(shard), "pt") as f:
            for key in f.keys():
                out[key] = (shard.name, f.get_tensor(key))
    return out


def write_tensors(model_dir: Path, tensors: dict[str, tuple[str, torch.Tensor]]) -> None:
    """Rewrite every shard and the index from (shard file name, tensor) pairs."""
    for shard in model_dir.glob("*.safetensors"):
        shard.unlink()
    by_file: dict[str, dict[str, torch.Tensor]] = {}
    for key, (filename, tensor) in tensors.items():
        by_file.setdefault(filename, {})[key] = tensor.contiguous()
    for filename, part in by_file.items():
        save_file(part, str(model_dir / filename), metadata={"format": "pt"})
    index = model_dir / "model.safetensors.index.json"
    if index.is_file() or len(by_file) > 1:
        total = sum(t.numel() * t.element_size() for _, t in tensors.values())
        data = {"metadata": {"total_size": total},
                "weight_map": {k: f for k, (f, _) in sorted(tensors.items())}}
        index.write_text(json.dumps(data, indent=2) + "\n")


def copy_checkpoint(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)


def key_style(model_dir: Path) -> str:
    """The key style of a checkpoint's decoder: "model.language_model" or "model.layers"."""
    keys = []
    for shard in model_dir.glob("*.safetensors"):
        with safe_open(str(shard), "pt") as f:
            keys += list(f.keys())
    return "model.language_model" if any(k.startswith("model.language_model.") for k in keys) else "model.layers"


def layer_key(tensors: dict, suffix: str) -> str:
    """The one key ending with ``suffix`` in layer 0 (either key style)."""
    keys = [k for k in tensors if k.endswith(suffix) and ".layers.0." in k]
    if len(keys) != 1:
        raise RuntimeError(f"expected one key ending with {suffix}, found {keys}")
    return keys[0]


# ---------------------------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------------------------

def build_base(out: Path, name: str) -> None:
    if name != "base-newkeys":
        build_tiny_model(out / name, family=BASES[name], preset=PRESET, seed=0)
        return
    if not (out / "base" / "config.json").is_file():
        build_base(out, "base")
    # The same weights under transformers 5's module names, as some re-saved checkpoints
    # (and Qwen3-VL's) have them: model.language_model.*, model.visual.*
    copy_checkpoint(out / "base", out / "base-newkeys")
    tensors = read_tensors(out / "base-newkeys")
    renamed = {}
    for key, value in tensors.items():
        if key.startswith("visual."):
            key = "model." + key
        elif key.startswith("model.") and not key.startswith(("model.language_model.", "model.visual.")):
            key = "model.language_model." + key[len("model."):]
        renamed[key] = value
    write_tensors(out / "base-newkeys", renamed)


def build_good(out: Path, name: str) -> None:
    base, config, tp = GOOD[name]
    t0 = time.perf_counter()
    if (out / name).exists():  # a previous run's output: rebuild from scratch
        shutil.rmtree(out / name)
    calibration = CalibrationConfig(num_samples=NUM_SAMPLES, max_pixels=MAX_PIXELS)
    # Small shards, so that the checkpoints are sharded with an index as real ones are.
    quantize_checkpoint(out / base, out / name, config(), calibration=calibration, tensor_parallel=tp,
                        show_progress=False, max_shard_size="2MB")
    log.info("%s: %.1f s", name, time.perf_counter() - t0)


def break_missing(out: Path, good: str, name: str, suffix: str) -> None:
    copy_checkpoint(out / good, out / name)
    tensors = read_tensors(out / name)
    del tensors[layer_key(tensors, suffix)]
    write_tensors(out / name, tensors)


def break_gptq_axis(out: Path, good: str, name: str) -> None:
    """qweight [K/8, N] (packed along K) -> [K, N/8] (packed along N, the AWQ axis)."""
    copy_checkpoint(out / good, out / name)
    tensors = read_tensors(out / name)
    key = layer_key(tensors, "mlp.down_proj.qweight")
    filename, qweight = tensors[key]
    codes = _unpack(qweight, 4, dim=0)  # [K, N]
    tensors[key] = (filename, pack_cols(codes, 4))  # [K, N/8]
    write_tensors(out / name, tensors)


def break_awq_axis(out: Path, good: str, name: str) -> None:
    """qweight [K, N/8] (packed along N) -> [K/8, N] (packed along K, the GPTQ axis)."""
    copy_checkpoint(out / good, out / name)
    tensors = read_tensors(out / name)
    key = layer_key(tensors, "mlp.down_proj.qweight")
    filename, qweight = tensors[key]
    codes = _unpack(qweight, 4, dim=1)  # [K, N] (word order aside: values stay 4-bit codes)
    tensors[key] = (filename, pack_rows(codes, 4))  # [K/8, N]
    write_tensors(out / name, tensors)


def _unpack(packed: torch.Tensor, bits: int, dim: int) -> torch.Tensor:
    per = 32 // bits
    shifts = torch.arange(per, dtype=torch.int32) * bits
    mask = (1 << bits) - 1
    if dim == 0:  # [R/per, C] -> [R, C]
        vals = (packed.unsqueeze(1) >> shifts.view(1, per, 1)) & mask
        return vals.reshape(-1, packed.shape[1]).to(torch.int32)
    vals = (packed.unsqueeze(2) >> shifts.view(1, 1, per)) & mask  # [R, C/per, per]
    return vals.reshape(packed.shape[0], -1).to(torch.int32)


def break_quantized_vision(out: Path, good: str, name: str, method: str,
                           module: str = "blocks.0.attn.qkv") -> None:
    """The vision Linear ``visual.{module}`` (BF16 weight; its bias stays) -> round-to-nearest
    4-bit tensors of ``method``."""
    from qwen2vl_quant.formats.awq import pack_awq

    copy_checkpoint(out / good, out / name)
    tensors = read_tensors(out / name)
    keys = [k for k in tensors if k.endswith(f"visual.{module}.weight")]
    if len(keys) != 1:
        raise RuntimeError(f"vision weight visual.{module}.weight not found: {keys}")
    key = keys[0]
    filename, weight = tensors.pop(key)
    w = weight.float()  # [N, K]
    n, k = w.shape
    g = 128 if k % 128 == 0 else k
    groups = w.reshape(n, k // g, g)
    scale = (groups.abs().amax(-1) / 7).clamp(min=1e-8)  # [N, G]
    codes = (torch.round(groups / scale.unsqueeze(-1)) + 8).clamp(0, 15).reshape(n, k).to(torch.uint8)
    prefix = key[: -len("weight")]
    if method == "gptq":
        zeros = torch.full((k // g, n), 8, dtype=torch.int64)
        packed = pack_gptq(codes, zeros, scale.T.contiguous(), torch.arange(k) // g, bits=4)
    else:
        packed = pack_awq(codes, torch.full((k // g, n), 8, dtype=torch.int64), scale.T.contiguous(), bits=4)
    for suffix, tensor in packed.items():
        tensors[prefix + suffix] = (filename, tensor)
    write_tensors(out / name, tensors)


def break_qzeros_v2(out: Path, good: str, name: str) -> None:
    """Every qzeros word of a sym Int4 checkpoint -> raw midpoint 8 (0x88888888), not 7."""
    copy_checkpoint(out / good, out / name)
    tensors = read_tensors(out / name)
    for key, (filename, t) in list(tensors.items()):
        if key.endswith(".qzeros"):
            tensors[key] = (filename, torch.full_like(t, 0x88888888 - 2**32))
    write_tensors(out / name, tensors)


BROKEN = {
    # name -> (good source, builder, which check must reject it)
    "broken-gptq-missing-qzeros": ("gptq-int4", lambda o, g, n: break_missing(o, g, n, "self_attn.o_proj.qzeros"),
                                   "vllm-weight-tracking"),
    "broken-gptq-missing-qzeros-fused": ("gptq-int4", lambda o, g, n: break_missing(o, g, n, "self_attn.q_proj.qzeros"),
                                         "unfilled-parameter"),
    "broken-awq-missing-qzeros": ("awq-int4", lambda o, g, n: break_missing(o, g, n, "self_attn.o_proj.qzeros"),
                                  "vllm-weight-tracking"),
    "broken-awq-missing-qzeros-fused": ("awq-int4", lambda o, g, n: break_missing(o, g, n, "self_attn.q_proj.qzeros"),
                                        "unfilled-parameter"),
    "broken-gptq-qweight-wrong-axis": ("gptq-int4", break_gptq_axis, "vllm-load-error"),
    "broken-awq-qweight-wrong-axis": ("awq-int4", break_awq_axis, "vllm-load-error"),
    "broken-gptq-quantized-vision": ("gptq-int4", lambda o, g, n: break_quantized_vision(o, g, n, "gptq"),
                                     "vision-quant-method"),
    "broken-awq-quantized-vision": ("awq-int4", lambda o, g, n: break_quantized_vision(o, g, n, "awq"),
                                    "vllm-load-error"),
    "broken-gptq-qzeros-v2": ("gptq-int4", break_qzeros_v2, "sym-qzeros"),
    # The new families (see the module docstring)
    "qwen3_vl-broken-gptq-missing-qzeros": (
        "qwen3_vl-gptq-int4", lambda o, g, n: break_missing(o, g, n, "self_attn.o_proj.qzeros"),
        "vllm-weight-tracking"),
    "qwen3_vl-broken-gptq-missing-qzeros-fused": (
        "qwen3_vl-gptq-int4", lambda o, g, n: break_missing(o, g, n, "self_attn.q_proj.qzeros"),
        "unfilled-parameter"),
    "qwen3_vl-broken-gptq-quantized-deepstack": (
        "qwen3_vl-gptq-int4",
        lambda o, g, n: break_quantized_vision(o, g, n, "gptq", "deepstack_merger_list.0.linear_fc1"),
        "vision-quant-method"),
    "qwen3_vl-broken-awq-quantized-deepstack": (
        "qwen3_vl-awq-int4",
        lambda o, g, n: break_quantized_vision(o, g, n, "awq", "deepstack_merger_list.0.linear_fc1"),
        "vllm-load-error"),
    "qwen2_5_vl-broken-awq-missing-qzeros": (
        "qwen2_5_vl-awq-int4", lambda o, g, n: break_missing(o, g, n, "self_attn.o_proj.qzeros"),
        "vllm-weight-tracking"),
    "qwen2_5_vl-broken-gptq-quantized-vision-mlp": (
        "qwen2_5_vl-gptq-int4", lambda o, g, n: break_quantized_vision(o, g, n, "gptq", "blocks.0.mlp.down_proj"),
        "vision-quant-method"),
    "qwen2_5_vl-broken-gptq-qweight-wrong-axis": ("qwen2_5_vl-gptq-int4", break_gptq_axis, "vllm-load-error"),
}
# What the check must name: a tensor (weight tracking, unfilled parameter) or a vLLM prefix
# (vision quant method); None: any error / any qzeros.
TARGETS = {
    "vllm-weight-tracking": "o_proj.qzeros",
    "unfilled-parameter": "qkv_proj.qzeros",
}
VISION_TARGETS = {
    "broken-gptq-quantized-vision": "visual.blocks.0.attn.qkv",
    "broken-awq-quantized-vision": "visual.blocks.0.attn.qkv",
    "qwen3_vl-broken-gptq-quantized-deepstack": "visual.deepstack_merger_list.0.linear_fc1",
    "qwen3_vl-broken-awq-quantized-deepstack": "visual.deepstack_merger_list.0.linear_fc1",
    "qwen2_5_vl-broken-gptq-quantized-vision-mlp": "visual.blocks.0.mlp.down_proj",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--only", nargs="*", help="build only these checkpoints (and what they need)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("qwen2vl_quant").setLevel(logging.WARNING)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    register_preset()
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    unknown = set(args.only or ()) - {*GOOD, *BROKEN, *BASES}
    if unknown:
        parser.error(f"unknown checkpoints {sorted(unknown)}")
    wanted = set(args.only or [*GOOD, *BROKEN])
    needed = wanted | {BROKEN[n][0] for n in wanted if n in BROKEN}
    t0 = time.perf_counter()
    for base in sorted(BASES, key=lambda b: b == "base-newkeys"):  # base-newkeys is made from base
        if not (out / base / "config.json").is_file():
            t1 = time.perf_counter()
            build_base(out, base)
            log.info("%s: %.1f s", base, time.perf_counter() - t1)
    bases = {base: {"family": family, "key_style": key_style(out / base)} for base, family in BASES.items()}
    manifest = {"preset": PRESET_SHAPES.__dict__ | {"name": PRESET}, "num_samples": NUM_SAMPLES,
                "families": {f: {"base": family_name(f, "base"), "prefix": family_name(f, "")} for f in FAMILIES},
                "family_preset": {f: [dataclasses.asdict(x) for x in FAMILY_PRESETS[PRESET]] for f in NEW_FAMILIES},
                "bases": bases, "checkpoints": {}}
    for name, (base, config, tp) in GOOD.items():
        if name in needed:
            build_good(out, name)
        cfg = config()
        manifest["checkpoints"][name] = {
            "family": bases[base]["family"], "base": base, "method": cfg.method, "bits": cfg.bits,
            "group_size": cfg.group_size, "desc_act": getattr(cfg, "desc_act", False), "tensor_parallel": tp,
            "key_style": bases[base]["key_style"], "expect": "accept",
        }
    for name, (good, builder, check) in BROKEN.items():
        if name in wanted:
            builder(out, good, name)
        manifest["checkpoints"][name] = {**manifest["checkpoints"][good], "broken_from": good,
                                         "expect": "reject", "caught_by": check,
                                         "target": VISION_TARGETS.get(name, TARGETS.get(check))}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=list) + "\n")
    log.info("wrote %d checkpoints to %s in %.1f s", len(wanted), out, time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
