#!/usr/bin/env python3
"""Train the small Qwen2-VL of the accuracy table, offline, on a 2-core CPU.

Quality numbers measured on random weights say little, so the CI benchmark quantizes a
small model that has learned something: this script trains one from scratch on the
synthetic picture-question task of shapes_task.py (count the shapes, name their color and
their kind, read a seven-segment digit, yes/no), and writes

    OUT/                     the BF16 checkpoint: config, safetensors, tokenizer, processor,
                             chat template (the real Qwen2-VL files, from qwen2vl_quant.testing.tiny_model)
    OUT/heldout_vqa.jsonl    held-out questions: {"image", "question", "answers"} (paths relative)
    OUT/calib.jsonl          calibration conversations (separate training-distribution pictures)
    OUT/training.json        how it was trained and its held-out accuracy along the way

The model is tiny_model's "small" preset (hidden 256, 4 layers, vision depth 2, 3.2 M
parameters). Each picture comes with four or five questions in one multi-turn conversation
and the loss covers every answer (DESIGN.md section 4). Training runs in float32; the
checkpoint is saved in BF16 and its held-out accuracy is measured again in BF16.

    python benchmarks/train_small_vlm.py                 # about 15-30 min on 2 busy cores
    python benchmarks/train_small_vlm.py --steps 200     # a quick smoke run

The held-out accuracy printed here is teacher-forced (every answer token and the closing
<|im_end|> must be the argmax), which for these short answers equals greedy generation;
the benchmark harness measures it again by generation.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import shapes_task  # noqa: E402

from qwen2vl_quant.testing.tiny_model import build_tiny_qwen2vl  # noqa: E402

log = logging.getLogger("train_small_vlm")

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "models" / "small-vlm"
# Disjoint seeds: the training stream, the held-out file and the calibration file never
# share a picture.
TRAIN_SEED, HELDOUT_SEED, CALIB_SEED, MONITOR_SEED = 1, 2, 3, 4
IMAGE_PAD = "<|image_pad|>"


class Encoder:
    """Conversations -> padded model inputs with answer-only labels, without the HF image
    processor (tens of ms per picture here): for our fixed 112x112 pictures its output is
    rescale, normalize and patchify, which ``patchify`` reproduces (checked in ``check``)."""

    def __init__(self, processor) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        ip = processor.image_processor
        self.patch, self.merge, self.temporal = ip.patch_size, ip.merge_size, ip.temporal_patch_size
        self.mean = np.asarray(ip.image_mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(ip.image_std, dtype=np.float32).reshape(3, 1, 1)
        self.image_id = self.tokenizer.convert_tokens_to_ids(IMAGE_PAD)

    def patchify(self, image) -> tuple[torch.Tensor, list[int]]:
        a = np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) * (1 / 255.0)
        a = (a - self.mean) / self.std
        c, h, w = a.shape
        p, m, t = self.patch, self.merge, self.temporal
        gh, gw = h // p, w // p
        x = np.broadcast_to(a[None], (t, c, h, w)).reshape(1, t, c, gh // m, m, p, gw // m, m, p)
        x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8).reshape(gh * gw, c * t * p * p)
        return torch.from_numpy(np.ascontiguousarray(x)), [1, gh, gw]

    def check(self, image) -> None:
        ref = self.processor.image_processor(images=[image], return_tensors="pt")
        mine, grid = self.patchify(image)
        if ref["image_grid_thw"][0].tolist() != grid or not torch.allclose(ref["pixel_values"], mine, atol=1e-5):
            raise RuntimeError("patchify differs from the Qwen2-VL image processor")

    def batch(self, items: list[tuple[object, list[dict]]]) -> dict[str, torch.Tensor]:
        """items: (PIL image, conversation) -> input_ids, attention_mask, mm_token_type_ids,
        pixel_values, image_grid_thw, labels (-100 except each answer and its <|im_end|>)."""
        texts, pixels, grids = [], [], []
        for image, conv in items:
            values, grid = self.patchify(image)
            tokens = grid[1] * grid[2] // self.merge**2
            text = self.processor.apply_chat_template(conv, tokenize=False)
            texts.append(text.replace(IMAGE_PAD, IMAGE_PAD * tokens))
            pixels.append(values)
            grids.append(grid)
        enc = self.tokenizer(texts, padding=True, return_tensors="pt", return_offsets_mapping=True)
        labels = torch.full_like(enc["input_ids"], -100)
        for row, text in enumerate(texts):
            spans = _answer_spans(text)
            for col, (start, end) in enumerate(enc["offset_mapping"][row].tolist()):
                if end > start and any(a <= start and end <= b for a, b in spans):
                    labels[row, col] = enc["input_ids"][row, col]
        labels[enc["attention_mask"] == 0] = -100
        ids = enc["input_ids"]
        return {
            "input_ids": ids,
            "attention_mask": enc["attention_mask"],
            "mm_token_type_ids": (ids == self.image_id).to(torch.int32),
            "pixel_values": torch.cat(pixels),
            "image_grid_thw": torch.tensor(grids, dtype=torch.long),
            "labels": labels,
        }


def _answer_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of every assistant answer, including its closing <|im_end|>."""
    head, end = "<|im_start|>assistant\n", "<|im_end|>"
    spans, pos = [], 0
    while (start := text.find(head, pos)) != -1:
        start += len(head)
        stop = text.index(end, start) + len(end)
        spans.append((start, stop))
        pos = stop
    return spans


def training_batch(rng: random.Random, size: int) -> list[tuple[object, list[dict]]]:
    items = []
    for _ in range(size):
        scene = shapes_task.random_scene(rng)
        image = shapes_task.draw_scene(scene, rng)
        items.append((image, shapes_task.conversation("picture", shapes_task.questions(scene, rng, describe=True))))
    return items


def monitor_set(count: int, seed: int) -> list[tuple[object, list[dict]]]:
    """One question per conversation, as the held-out file asks them (first turn)."""
    rng = random.Random(seed)
    items = []
    for _ in range(count):
        scene = shapes_task.random_scene(rng)
        image = shapes_task.draw_scene(scene, rng)
        for qa in shapes_task.questions(scene, rng, conversation=False):
            items.append((image, shapes_task.conversation("picture", [qa])))
    return items


@torch.no_grad()
def teacher_forced_accuracy(model, encoder: Encoder, items, batch_size: int = 32) -> tuple[float, dict[str, float]]:
    """Fraction of questions whose every answer token (and <|im_end|>) is the argmax:
    overall and per question type (the first question of each conversation)."""
    model.eval()
    right: dict[str, list[int]] = {}
    for i in range(0, len(items), batch_size):
        chunk = items[i:i + batch_size]
        batch = encoder.batch(chunk)
        labels = batch.pop("labels")
        logits = model(**batch).logits
        pred = logits[:, :-1].argmax(-1)
        target = labels[:, 1:]
        ok = ((pred == target) | (target == -100)).all(dim=1).tolist()
        for (_, conv), good in zip(chunk, ok):
            kind = shapes_task.question_type(conv[0]["content"][1]["text"])
            right.setdefault(kind, []).append(int(good))
    model.train()
    total = sum(sum(v) for v in right.values()) / sum(len(v) for v in right.values())
    return total, {k: round(sum(v) / len(v), 3) for k, v in sorted(right.items())}


def write_heldout(out: Path, pictures: int) -> int:
    rows = []
    for path, qa in shapes_task.write_pictures(out / "heldout", "heldout", pictures, HELDOUT_SEED, conversation=False):
        rows += [{"image": f"heldout/{path.name}", "question": q, "answers": [a]} for q, a in qa]
    _write_jsonl(out / "heldout_vqa.jsonl", rows)
    return len(rows)


def write_calibration(out: Path, pictures: int) -> int:
    rows = [shapes_task.conversation(f"calib/{path.name}", qa)
            for path, qa in shapes_task.write_pictures(out / "calib", "calib", pictures, CALIB_SEED, describe=True)]
    _write_jsonl(out / "calib.jsonl", rows)
    return len(rows)


def _write_jsonl(path: Path, rows: list) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _widen_vision(model, width: int):
    """The same model with a vision tower of ``width`` channels (freshly initialized by
    transformers); the language model keeps tiny_model's initial weights."""
    from transformers import Qwen2VLForConditionalGeneration

    config = model.config
    config.vision_config.embed_dim = width
    config.vision_config.num_heads = max(1, width // 32)
    wider = Qwen2VLForConditionalGeneration(config).to(torch.float32)
    own = {k: v for k, v in model.state_dict().items() if ".visual." not in f".{k}"}
    missing = [k for k in wider.load_state_dict(own, strict=False).missing_keys if "visual" not in k]
    if missing:
        raise RuntimeError(f"unexpected missing weights {missing[:3]}")
    return wider


def _fresh(out: Path, args):
    """The untrained model (and its processor), its directory copied to ``out``."""
    from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

    with tempfile.TemporaryDirectory() as tmp:
        # The untrained model with the real Qwen2-VL tokenizer, processor and chat template.
        init = build_tiny_qwen2vl(Path(tmp) / "init", preset="small", seed=args.seed, outlier_channels=False)
        processor = AutoProcessor.from_pretrained(init)
        model = Qwen2VLForConditionalGeneration.from_pretrained(init, dtype=torch.float32)
        if args.vision_dim:
            model = _widen_vision(model, args.vision_dim)
            model.config.save_pretrained(init)
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(init, out)
    return processor, model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--batch-size", type=int, default=8, help="pictures (conversations) per step")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--heldout-pictures", type=int, default=40)
    parser.add_argument("--calib-pictures", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="initial weights")
    parser.add_argument("--vision-dim", type=int, default=None,
                        help="width of the vision tower (preset small: 64); its heads keep 32 channels each")
    parser.add_argument("--resume", action="store_true", help="continue a killed run from its last evaluation")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (1 is much faster than 2 on a CPU shared with other jobs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

    out = args.out
    state_path = out.with_name(out.name + ".train-state.pt")  # resume point, removed at the end
    resume = args.resume and state_path.is_file() and (out / "config.json").is_file()
    if resume:
        processor = AutoProcessor.from_pretrained(out)
        model = Qwen2VLForConditionalGeneration.from_pretrained(out, dtype=torch.float32)
    else:
        processor, model = _fresh(out, args)
    encoder = Encoder(processor)
    rng = random.Random(TRAIN_SEED)
    encoder.check(training_batch(random.Random(0), 1)[0][0])
    monitor = monitor_set(30, MONITOR_SEED)
    params = sum(p.numel() for p in model.parameters())
    log.info("training a %.2f M-parameter Qwen2-VL for %d steps of %d pictures", params / 1e6, args.steps, args.batch_size)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return (step + 1) / args.warmup
        progress = (step - args.warmup) / max(1, args.steps - args.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    history, started, running, first = [], time.perf_counter(), None, 1
    if resume:
        state = torch.load(state_path, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        history, running, first = state["history"], state["running"], state["step"] + 1
        started -= state["seconds"]
        log.info("resumed after step %d", state["step"])
    model.train()
    for step in range(first, args.steps + 1):
        batch = encoder.batch(training_batch(rng, args.batch_size))
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if step % 50 == 0:
            log.info("step %d: loss %.4f (%.0f s)", step, running, time.perf_counter() - started)
        if step % args.eval_every == 0 or step == args.steps:
            accuracy, by_type = teacher_forced_accuracy(model, encoder, monitor)
            elapsed = time.perf_counter() - started
            history.append({"step": step, "loss": round(running, 4), "accuracy": round(accuracy, 4),
                            "by_type": by_type, "seconds": round(elapsed, 1)})
            log.info("step %d: loss %.4f, monitor accuracy %.1f %% %s (%.0f s)", step, running, 100 * accuracy,
                     by_type, elapsed)
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "rng": rng.getstate(), "torch_rng": torch.get_rng_state(),
                        "history": history, "running": running, "step": step, "seconds": elapsed}, state_path)

    model = model.to(torch.bfloat16).eval()
    model.save_pretrained(out)
    monitor_bf16, _ = teacher_forced_accuracy(model, encoder, monitor)
    questions = write_heldout(out, args.heldout_pictures)
    calib = write_calibration(out, args.calib_pictures)
    heldout_items = [(Image.open(out / r["image"]).convert("RGB"),
                      shapes_task.conversation("picture", [(r["question"], r["answers"][0])]))
                     for r in map(json.loads, (out / "heldout_vqa.jsonl").read_text().splitlines())]
    heldout_bf16, heldout_by_type = teacher_forced_accuracy(model, encoder, heldout_items)
    record = {
        "task": "benchmarks/shapes_task.py", "preset": "small", "parameters": params, "steps": args.steps,
        "batch_size": args.batch_size, "lr": args.lr, "vision_dim": model.config.vision_config.embed_dim,
        "warmup": args.warmup, "seed": args.seed,
        "seeds": {"train": TRAIN_SEED, "heldout": HELDOUT_SEED, "calibration": CALIB_SEED, "monitor": MONITOR_SEED},
        "train_seconds": round(time.perf_counter() - started, 1), "torch_threads": torch.get_num_threads(),
        "history": history, "monitor_accuracy_bf16": round(monitor_bf16, 4),
        "heldout_questions": questions, "heldout_accuracy_bf16_teacher_forced": round(heldout_bf16, 4),
        "heldout_accuracy_by_type": heldout_by_type,
        "calibration_conversations": calib,
        "command": " ".join(["python benchmarks/train_small_vlm.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    (out / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    state_path.unlink(missing_ok=True)
    print(f"held-out accuracy in BF16 (teacher-forced): {100 * heldout_bf16:.1f} % on {questions} questions; "
          f"by type {heldout_by_type}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
