"""Offline builder of small random-weight Qwen2-VL checkpoints for tests, benchmarks and demos.

Nothing can be downloaded from the model hub here, so every test, benchmark and the README
demo starts from a directory this module writes: the same files a real Qwen2-VL-Instruct
checkpoint has (config.json, generation_config.json, safetensors weights, tokenizer,
image/video processor config, chat template), all written by transformers' own
``save_pretrained`` so that they load exactly as real checkpoints do.

Presets: "tiny" (sub-second, for unit tests), "small" (K divisible by 128 so the default
group size works) and "2b-shapes" (the real Qwen2-VL-2B-Instruct shapes, for speed and
memory benchmarks; streamed to disk layer by layer).

Random weights alone make activation-aware quantization (AWQ) look pointless: every input
channel has the same scale.  Real LLMs have a few hidden channels with much larger
activations (Dettmers et al. 2022, "LLM.int8()"; Sun et al. 2024, "Massive Activations"),
so ``outlier_channels=True`` plants such channels deterministically (see ``outlier_spec``).

    model_dir = build_tiny_qwen2vl("/tmp/tiny-qwen2vl")       # about 1 s

Pictures and conversations to calibrate or test it with are in ``sample_data``.
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["PRESETS", "build_processor", "build_tiny_qwen2vl", "build_tokenizer", "outlier_spec", "tiny_config"]

log = logging.getLogger(__name__)

# Qwen2-VL's special tokens in their real order; the real ids are 151643..151656.
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)
BPE_VOCAB_SIZE = 1000  # trained byte-level BPE tokens; the special tokens follow them
SPECIAL_IDS = {tok: BPE_VOCAB_SIZE + i for i, tok in enumerate(SPECIAL_TOKENS)}

# The chat template shipped with Qwen2-VL-Instruct (chat_template.json), verbatim.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen2's pre-tokenizer split (transformers' tokenization_qwen2.PRETOKENIZE_REGEX).
_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Built-in training text for the tokenizer: the words our test conversations use, plus
# ordinary English, digits and punctuation, so prompts tokenize into few tokens.
_CORPUS = """\
You are a helpful assistant. I am a large language model named Qwen, created to answer questions.
Tell me who you are. Describe this image. Describe this video. What is in the picture?
Output all text in the image. Identify the similarities between these images.
What are the common elements in these pictures? Generate a caption for this image.
The picture shows a red circle, a blue square and a green triangle on a white background.
There is a yellow rectangle next to an orange ellipse; a purple star is above a black line.
The shapes are small, large, bright, dark, round, sharp, left, right, top, bottom and center.
In the video the shape moves from the left to the right while the color slowly changes.
The first frame and the last frame look almost the same, but the second one is brighter.
Count the objects: one, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve.
Numbers such as 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 42, 100, 256, 1024 and 3.14 appear in text.
The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs!
Quantization stores each weight with four or eight bits, and a scale for every group.
A calibration set of images, videos and text helps the model keep its accuracy after that.
Please answer the question briefly. Sure, here is the answer: yes, no, maybe, it depends.
Why? Because the model reads the image tokens first, then the question, then it replies.
Punctuation: commas, periods. colons: semicolons; (brackets) [lists] {sets} "quotes" 'marks'
- dashes / slashes \\ backslashes | pipes # hashes @ at & and % percent * star + plus = equals
The weather is sunny today, so we walk to the park and watch the birds near the water.
She reads a book about history, science, music and art while he cooks dinner for everyone.
Every morning the train leaves the station at seven o'clock and arrives before nine.
They're sure it's fine; we've seen it, you'll like it, I'm glad, he'd agree, she'll come.
Scientists measure temperature, pressure, distance and energy with careful experiments.
Children play football in the garden; their grandmother knits a warm woollen blanket.
A computer program compiles source code, allocates memory, and schedules threads quickly.
Mountains, rivers, forests, deserts, islands and oceans cover different parts of the world.
Doctors, teachers, engineers, farmers, musicians and writers work in every big city.
Monday, Tuesday, Wednesday, Thursday, Friday, Saturday and Sunday make up one week.
January, February, March, April, May, June, July, August, September, October, November.
Vegetables like carrots, potatoes, tomatoes, onions and cabbage grow well in spring.
Photographs capture light through a lens; cameras focus, zoom and adjust the exposure.
"""

_NORM_FED = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")  # inputs are RMSNorm outputs
_VISION = dict(mlp_ratio=4, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)


@dataclass(frozen=True)
class Preset:
    """Shapes of one preset; the vision tower's output width equals ``hidden``."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vision_depth: int
    vision_dim: int
    vision_heads: int
    mrope_section: tuple[int, int, int]  # sums to head_dim / 2 (M-RoPE: t, h, w)
    vocab_size: int
    tie_word_embeddings: bool
    image_pixels: tuple[int, int]  # processor (min_pixels, max_pixels)
    video_pixels: tuple[int, int] | None  # None: transformers' Qwen2-VL default


PRESETS = {
    # Few pixels so that test images give at most 16 visual tokens (64 for "small").
    "tiny": Preset(64, 2, 4, 2, 192, 2, 32, 2, (2, 3, 3), 1024, False,
                   (56 * 56, 28 * 28 * 16), (56 * 56, 28 * 28 * 16)),
    "small": Preset(256, 4, 4, 2, 512, 2, 64, 2, (8, 12, 12), 1024, False,
                    (56 * 56, 28 * 28 * 64), (56 * 56, 28 * 28 * 64)),
    # The vLLM interop tier (tests/vllm): head_dim 128 and every K and output slice a multiple
    # of 128 up to 4-way tensor parallelism, as the real sizes are; intermediate 1152 = 9 x
    # 128, so --tensor-parallel 2 and 4 really pad it; 8 vision heads split 4 ways.
    "vllm": Preset(512, 2, 4, 2, 1152, 2, 256, 8, (16, 24, 24), 1024, False,
                   (56 * 56, 28 * 28 * 64), (56 * 56, 28 * 28 * 64)),
    # Qwen2-VL-2B-Instruct, with its preprocessor_config's pixel bounds; its real config
    # ties lm_head to the embeddings (2.21 B parameters).
    "2b-shapes": Preset(1536, 28, 12, 2, 8960, 32, 1280, 16, (16, 24, 24), 151936, True,
                        (56 * 56, 28 * 28 * 16384), None),
}


def tiny_config(preset: str = "tiny"):
    """The ``Qwen2VLConfig`` of a preset, token ids pointing at our tokenizer."""
    from transformers import Qwen2VLConfig

    p = PRESETS[preset]
    text = dict(
        vocab_size=p.vocab_size, hidden_size=p.hidden, intermediate_size=p.intermediate,
        num_hidden_layers=p.layers, num_attention_heads=p.heads, num_key_value_heads=p.kv_heads,
        rope_scaling={"type": "mrope", "mrope_section": list(p.mrope_section)},
        rope_theta=1e6, max_position_embeddings=32768, rms_norm_eps=1e-6,
        sliding_window=32768, max_window_layers=p.layers, use_sliding_window=False,
        bos_token_id=SPECIAL_IDS["<|endoftext|>"], eos_token_id=SPECIAL_IDS["<|im_end|>"],
        tie_word_embeddings=p.tie_word_embeddings,
    )
    # in_chans is the key real checkpoints carry; transformers 5 reads in_channels.
    vision = dict(depth=p.vision_depth, embed_dim=p.vision_dim, num_heads=p.vision_heads,
                  hidden_size=p.hidden, in_chans=3, in_channels=3, **_VISION)
    return Qwen2VLConfig(
        text_config=text, vision_config=vision, tie_word_embeddings=p.tie_word_embeddings,
        image_token_id=SPECIAL_IDS["<|image_pad|>"], video_token_id=SPECIAL_IDS["<|video_pad|>"],
        vision_start_token_id=SPECIAL_IDS["<|vision_start|>"],
        vision_end_token_id=SPECIAL_IDS["<|vision_end|>"], dtype=torch.bfloat16,
    )


def outlier_spec(preset: str = "tiny", seed: int = 0) -> dict[str, dict[int, float]]:
    """Planted outlier channels -> their gain, for the hidden and the MLP intermediate width.

    About 3 % of channels get a gain in [10, 30).  The hidden ones multiply every decoder
    layer's input_layernorm and post_attention_layernorm weight, so q/k/v and gate/up see a
    few input channels 10-30x larger than the rest (the picture of LLM.int8() and AWQ); the
    intermediate ones multiply rows of up_proj, so down_proj's input has them too.  Those
    are the AWQ smoothing pairs (norm -> qkv, norm -> gate/up, up -> down).  The weights
    reading them are ordinary (drawn with a fan-in that counts the gained energy, so their
    outputs stay O(1)).  Massive residual-stream activations themselves are not modelled,
    only their effect on the inputs of the linears we quantize.  Measured on "small":
    int4 g128 round-to-nearest gives about 10 % relative output error per linear, and
    AWQ-style input scaling (alpha 0.2-0.4) about 5-6 %.
    """
    p = PRESETS[preset]
    gen = torch.Generator().manual_seed(seed)
    spec = {}
    for key, width in (("hidden", p.hidden), ("intermediate", p.intermediate)):
        n = max(2, round(0.03 * width))
        channels = torch.randperm(width, generator=gen)[:n].tolist()
        gains = (10 + 20 * torch.rand(n, generator=gen)).tolist()
        spec[key] = dict(sorted(zip(channels, gains)))
    return spec


def _init_tensor(name: str, shape: torch.Size, p: Preset, seed: int, spec: dict | None) -> torch.Tensor:
    """One parameter in float32, from (seed, name) only, so that the in-memory and the
    streamed paths, and any parameter order, give the same values."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
    leaf = name.rsplit(".", 2)[-2]  # module name, e.g. "q_proj", "input_layernorm"
    is_norm = "norm" in leaf or leaf == "ln_q"
    if is_norm:
        t = torch.zeros(shape) if name.endswith("bias") else torch.ones(shape)
    elif name.endswith("bias") or leaf == "embed_tokens":
        t = 0.02 * torch.randn(shape, generator=gen)  # Qwen2 has q/k/v biases; keep them non-zero
    else:
        # std 1/sqrt(fan_in) keeps every linear's output O(1) (about 0.02 at the 2B widths);
        # layers writing into the residual stream get a further 1/sqrt(2 * depth) (GPT-2)
        # so it does not grow with depth.  A planted outlier channel of gain g carries g^2
        # times the energy of a normal one, so it counts g^2 times in the fan-in: the output
        # stays O(1) while the weights stay ordinary, as in real LLMs.
        fan_in = math.prod(shape[1:])
        if spec is not None and ".language_model." in name:
            gained = "intermediate" if leaf == "down_proj" else "hidden" if leaf in _NORM_FED else None
            if gained:
                fan_in += sum(g * g - 1 for g in spec[gained].values())
        std = 1 / math.sqrt(fan_in)
        if leaf in ("o_proj", "down_proj", "fc2") or name.endswith("attn.proj.weight"):
            std /= math.sqrt(2 * (p.vision_depth if "visual" in name else p.layers))
        t = std * torch.randn(shape, generator=gen)
    if spec is not None and ".language_model." in name and name.endswith(".weight"):
        _plant_outliers(t, leaf, spec)
    return t


def _plant_outliers(t: torch.Tensor, leaf: str, spec: dict) -> None:
    """Apply ``outlier_spec`` to one decoder weight in place: the norm weights feeding
    q/k/v and gate/up (hidden channels), the up_proj rows feeding down_proj (intermediate)."""
    key = {"input_layernorm": "hidden", "post_attention_layernorm": "hidden", "up_proj": "intermediate"}
    if leaf in key:
        channels = spec[key[leaf]]
        gains = torch.tensor(list(channels.values())).reshape(-1, *[1] * (t.dim() - 1))
        t[list(channels)] *= gains


def build_tokenizer():
    """Byte-level BPE trained on the built-in text, as transformers' ``Qwen2Tokenizer``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    # Same normalizer / pre-tokenizer as Qwen2's tokenizer.json, so text splits as in Qwen2.
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB_SIZE, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(_CORPUS.splitlines(), trainer)
    model = json.loads(bpe.to_str())["model"]
    vocab = dict(model["vocab"])
    if len(vocab) != BPE_VOCAB_SIZE:
        raise RuntimeError(f"BPE training gave {len(vocab)} tokens, expected {BPE_VOCAB_SIZE}")
    vocab.update(SPECIAL_IDS)  # Qwen2 keeps the special tokens after the BPE ids
    tokenizer = Qwen2Tokenizer(
        vocab=vocab, merges=[tuple(m) for m in model["merges"]], unk_token=None,
        eos_token="<|im_end|>", pad_token="<|endoftext|>", errors="replace",
        additional_special_tokens=list(SPECIAL_TOKENS[1:]), model_max_length=32768,
    )
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    if ids != list(SPECIAL_IDS.values()):
        raise RuntimeError(f"special token ids {ids} differ from {list(SPECIAL_IDS.values())}")
    return tokenizer


def build_processor(preset: str = "tiny", tokenizer=None):
    """``Qwen2VLProcessor`` (image + video processors, tokenizer, Qwen2-VL chat template)."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    p = PRESETS[preset]
    image_size, video_size = ({"shortest_edge": px[0], "longest_edge": px[1]} if px else None
                              for px in (p.image_pixels, p.video_pixels))
    # cap_pixels_per_frame=True: qwen-vl-utils' reference behavior (and silences a warning).
    video = Qwen2VLVideoProcessor(size=video_size, cap_pixels_per_frame=True)
    return Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(size=image_size),
                            tokenizer=tokenizer or build_tokenizer(),
                            video_processor=video, chat_template=CHAT_TEMPLATE)


def _generation_config():
    from transformers import GenerationConfig

    # Qwen2-VL-Instruct's generation_config.json (top_k=1: greedy), with our token ids.
    eod, eos = SPECIAL_IDS["<|endoftext|>"], SPECIAL_IDS["<|im_end|>"]
    return GenerationConfig(bos_token_id=eod, pad_token_id=eod, eos_token_id=[eos, eod],
                            do_sample=True, top_k=1, top_p=0.001, temperature=0.01,
                            repetition_penalty=1.0)


def build_tiny_qwen2vl(out_dir, *, preset: str = "tiny", seed: int = 0, outlier_channels: bool = True,
                       dtype: torch.dtype = torch.bfloat16, shard_size: str | int | None = None) -> Path:
    """Write a complete random-weight Qwen2-VL checkpoint directory and return its path.

    Deterministic: the same arguments give bit-identical files.  ``shard_size`` (e.g.
    "200KB") shards the weights with a model.safetensors.index.json, as big checkpoints do.
    """
    from transformers import Qwen2VLForConditionalGeneration

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("model*.safetensors*"):  # an earlier build's shards would mix in
        stale.unlink()
    p, config = PRESETS[preset], tiny_config(preset)
    config.dtype = dtype
    spec = outlier_spec(preset, seed) if outlier_channels else None
    log.info("building %s Qwen2-VL (seed %d, outliers %s) in %s", preset, seed, outlier_channels, out)
    if preset == "2b-shapes":
        # A model plus its state dict would be two copies of 4.4 GB: stream the parameters
        # to 1 GB shards instead (peak RSS about 4 GB: one shard, its serialization, and
        # the float32 embedding being drawn; about 40 s on 2 cores).
        config.save_pretrained(out)
        _write_streamed(out, config, p, seed, spec, dtype, shard_size or "1GB")
    else:
        with torch.random.fork_rng(devices=[]):  # its default init must not move the caller's RNG
            model = Qwen2VLForConditionalGeneration(config).to(dtype)
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.copy_(_init_tensor(name, param.shape, p, seed, spec))
        model.save_pretrained(out, **({"max_shard_size": shard_size} if shard_size else {}))
    _generation_config().save_pretrained(out)  # replaces the default one save_pretrained wrote
    build_processor(preset).save_pretrained(out)
    return out


def _write_streamed(out: Path, config, p: Preset, seed: int, spec, dtype, shard_size) -> None:
    """Write the weights shard by shard, one parameter at a time, in save_pretrained's format
    (checkpoint key names, index json), never holding more than one shard in memory."""
    from transformers import Qwen2VLForConditionalGeneration
    from transformers.core_model_loading import revert_weight_conversion
    from transformers.utils.hub import convert_file_size_to_int

    limit = convert_file_size_to_int(shard_size)
    with torch.device("meta"):  # shapes and names only, no memory
        meta = Qwen2VLForConditionalGeneration(config)
    names = [(n, q.shape) for n, q in meta.named_parameters()]  # tied lm_head listed once
    shards, current, size = [], {}, 0
    for name, shape in names:
        # transformers 5 renames modules on load (model.language_model.*) and back on save
        # (model.*, visual.*); ask it for the checkpoint key rather than hard-coding it.
        (key,) = revert_weight_conversion(meta, {name: torch.empty(shape, device="meta")})
        tensor = _init_tensor(name, shape, p, seed, spec).to(dtype)
        nbytes = tensor.numel() * tensor.element_size()
        if current and size + nbytes > limit:
            shards.append(_flush(out, current, len(shards)))
            current, size = {}, 0
        current[key], size = tensor, size + nbytes
    shards.append(_flush(out, current, len(shards)))
    weight_map, total_size, total_params = {}, 0, 0
    for i, (tmp, keys, nbytes, nparams) in enumerate(shards):
        final = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        tmp.rename(out / final)
        weight_map.update(dict.fromkeys(keys, final))
        total_size, total_params = total_size + nbytes, total_params + nparams
    index = {"metadata": {"total_parameters": total_params, "total_size": total_size},
             "weight_map": dict(sorted(weight_map.items()))}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def _flush(out: Path, tensors: dict, i: int):
    from safetensors.torch import save_file

    tmp = out / f".shard-{i:05d}.safetensors"
    save_file(tensors, tmp, metadata={"format": "pt"})
    log.info("wrote shard %d (%d tensors)", i + 1, len(tensors))
    nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
    return tmp, list(tensors), nbytes, sum(t.numel() for t in tensors.values())
