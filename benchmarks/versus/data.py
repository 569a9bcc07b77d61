"""The calibration and held-out conversations (pictures drawn here, from seeds), and the check
that the two share no picture or text."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from .settings import HELD_OUT, HELD_OUT_SEED, IMAGE_SIZE


def make_calibration(directory: Path, n: int) -> Path:
    """n image conversations; the same generator (and so the same files for n=16) as the
    /tmp/b2/calib16.jsonl set the issue was measured with: coloured rectangles with labels."""
    from PIL import Image, ImageDraw

    rng = random.Random(0)
    img_dir = directory / "calib_img"
    img_dir.mkdir(parents=True, exist_ok=True)
    path = directory / f"calib{n}.jsonl"
    with open(path, "w") as f:
        for i in range(n):
            im = Image.new("RGB", IMAGE_SIZE, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
            d = ImageDraw.Draw(im)
            for _ in range(12):
                x0, y0 = rng.randrange(400), rng.randrange(300)
                d.rectangle([x0, y0, x0 + rng.randrange(10, 80), y0 + rng.randrange(10, 80)],
                            fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
                d.text((rng.randrange(400), rng.randrange(300)), f"item {rng.randrange(1000)}", fill=(0, 0, 0))
            p = img_dir / f"im{i}.png"
            im.save(p)
            conv = [{"role": "user", "content": [{"type": "image", "image": str(p)},
                                                 {"type": "text", "text": "Describe the picture and read the labels."}]},
                    {"role": "assistant", "content": "There are several colored rectangles with labels such as item 12 "
                                                     "and item 345 on a plain background."}]
            f.write(json.dumps(conv) + "\n")
    return path


_QUESTIONS = ("What shapes do you see, and what colors are they?", "Count the objects in this image.",
              "Output all text in the image.", "Where is the largest shape?",
              "Generate a caption for this image.", "What is in the picture?",
              "Which color covers most of the background?", "Describe this image.")


def make_held_out(directory: Path, n: int = HELD_OUT) -> Path:
    """n image + text conversations that share nothing with the calibration set: another
    seed, ellipses and lines besides rectangles, other questions, per-image answers."""
    from PIL import Image, ImageDraw

    rng = random.Random(HELD_OUT_SEED)
    img_dir = directory / "heldout_img"
    img_dir.mkdir(parents=True, exist_ok=True)
    colors = ("red", "green", "blue", "yellow", "orange", "purple", "black", "white")
    path = directory / f"heldout{n}.jsonl"
    with open(path, "w") as f:
        for i in range(n):
            bg = rng.choice(colors)
            im = Image.new("RGB", IMAGE_SIZE, bg)
            d = ImageDraw.Draw(im)
            shapes = []
            for _ in range(rng.randrange(3, 8)):
                kind, fg = rng.choice(("ellipse", "rectangle", "line")), rng.choice(colors)
                x0, y0 = rng.randrange(380), rng.randrange(280)
                box = [x0, y0, x0 + rng.randrange(20, 120), y0 + rng.randrange(20, 100)]
                if kind == "ellipse":
                    d.ellipse(box, fill=fg)
                elif kind == "rectangle":
                    d.rectangle(box, fill=fg)
                else:
                    d.line(box, fill=fg, width=4)
                shapes.append(f"a {fg} {kind}")
            number = rng.randrange(10000)
            d.text((rng.randrange(380), rng.randrange(300)), f"No. {number}", fill="black" if bg != "black" else "white")
            p = img_dir / f"held{i}.png"
            im.save(p)
            answer = f"On a {bg} background there are {len(shapes)} shapes: {', '.join(shapes)}. The text reads No. {number}."
            conv = [{"role": "user", "content": [{"type": "image", "image": str(p)},
                                                 {"type": "text", "text": _QUESTIONS[i % len(_QUESTIONS)]}]},
                    {"role": "assistant", "content": answer}]
            f.write(json.dumps(conv) + "\n")
    return path


def read_jsonl(path: Path) -> list:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def image_paths(conversations: list) -> list[str]:
    return [item["image"] for conv in conversations for msg in conv if isinstance(msg["content"], list)
            for item in msg["content"] if item.get("type") == "image"]


def local_path(path: str) -> str:
    return path.removeprefix("file://")


def check_disjoint(calib: Path, held_out: Path) -> dict:
    """The held-out set shares no image (by content) and no prompt+answer with the calibration set."""
    def digests(convs):
        return {hashlib.sha256(Path(local_path(p)).read_bytes()).hexdigest() for p in image_paths(convs)}

    def texts(convs):
        return {json.dumps([m for m in conv if not isinstance(m["content"], list)] +
                           [i for m in conv if isinstance(m["content"], list) for i in m["content"] if i.get("type") == "text"])
                for conv in convs}

    c, h = read_jsonl(calib), read_jsonl(held_out)
    shared_images = digests(c) & digests(h)
    shared_texts = texts(c) & texts(h)
    if shared_images or shared_texts:
        raise SystemExit(f"held-out set overlaps the calibration set: {len(shared_images)} images, {len(shared_texts)} texts")
    return {"calibration_images": len(image_paths(c)), "held_out_images": len(image_paths(h)),
            "shared_images": 0, "shared_texts": 0}
