"""Small deterministic pictures and Qwen2-VL conversations to calibrate and test with.

Offline, like ``tiny_model``: pictures of a colored shape and a digit, each carrying its
own description, and conversations in Qwen2-VL's message format over them (text only,
one image, two images, and a video given as frames).
"""

from __future__ import annotations

import random
from pathlib import Path

__all__ = ["SHAPES", "draw_shape", "make_test_images", "sample_conversations"]

SHAPES = ("circle", "square", "triangle")


def draw_shape(draw, kind: str, box: tuple[int, int, int, int], fill) -> None:
    """Draw a filled circle, square or triangle (point up) in ``box`` on a PIL ImageDraw."""
    if kind == "circle":
        draw.ellipse(box, fill=fill)
    elif kind == "square":
        draw.rectangle(box, fill=fill)
    elif kind == "triangle":
        draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=fill)
    else:
        raise ValueError(f"unknown shape {kind!r}; shapes: {SHAPES}")

_COLORS = ("red", "green", "blue", "yellow", "orange", "purple", "black", "white")
_SIZES = ((84, 56), (112, 112), (56, 84))  # (width, height); cycled so sizes repeat


def make_test_images(directory, n: int = 4, seed: int = 0) -> list[Path]:
    """Write ``n`` small deterministic PNGs (shapes and a digit); each carries a one-line
    "Description" text chunk that ``sample_conversations`` uses as the answer."""
    from PIL import Image, ImageDraw, PngImagePlugin

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for i in range(n):
        w, h = _SIZES[i % len(_SIZES)]
        bg, fg = rng.sample(_COLORS, 2)
        img = Image.new("RGB", (w, h), bg)
        draw = ImageDraw.Draw(img)
        shape = rng.choice(SHAPES)
        x0, y0 = rng.randrange(0, w // 3), rng.randrange(0, h // 3)
        draw_shape(draw, shape, (x0, y0, x0 + w // 2, y0 + h // 2), fg)
        digit = rng.randrange(10)
        draw.text((w - 14, h - 14), str(digit), fill="black" if bg != "black" else "white")
        info = PngImagePlugin.PngInfo()
        info.add_text("Description", f"A {fg} {shape} on a {bg} background, and the number {digit}.")
        path = directory / f"image_{i:02d}.png"
        img.save(path, pnginfo=info)
        paths.append(path)
    return paths


def sample_conversations(image_paths) -> list[list[dict]]:
    """Conversations in Qwen2-VL's message format (as in its README's quantization recipe):
    text only with a system prompt, one per image, two images, and a video given as frames."""
    from PIL import Image

    paths = [Path(p).resolve() for p in image_paths]
    if not paths:
        raise ValueError("need at least one image")
    uri = {p: f"file://{p}" for p in paths}  # qwen-vl-utils strips the 7-character scheme
    desc, sizes = {}, {}
    for p in paths:
        with Image.open(p) as img:
            desc[p], sizes[p] = img.text.get("Description", "A picture of simple shapes."), img.size

    def turn(items: str | list[dict], answer: str) -> list[dict]:
        return [{"role": "user", "content": items}, {"role": "assistant", "content": answer}]

    convs = [[{"role": "system", "content": "You are a helpful assistant."},
              *turn("Tell me who you are.",
                    "I am a large language model named Qwen, created to answer questions.")]]
    convs += [turn([{"type": "image", "image": uri[p]},
                    {"type": "text", "text": "Describe this image."}], desc[p]) for p in paths]
    a, b = paths[0], paths[1 % len(paths)]
    convs.append(turn([{"type": "image", "image": uri[a]}, {"type": "image", "image": uri[b]},
                       {"type": "text", "text": "Identify the similarities between these images."}],
                      f"The first: {desc[a]} The second: {desc[b]}"))
    # Video frames must share one size: repeat the images sized like the first to 4 frames.
    frames = [p for p in paths if sizes[p] == sizes[paths[0]]]
    frames = [frames[i % len(frames)] for i in range(4)]
    convs.append(turn([{"type": "video", "video": [uri[f] for f in frames], "fps": 1.0},
                       {"type": "text", "text": "Describe this video."}],
                      "In the video the shapes change from one frame to the next. " + desc[frames[0]]))
    return convs


def unbounded(**overrides):
    """Every sample, no pixel bound of ours (the processor's): where the calibration tests
    start from, changing only what each test is about."""
    from ..config import CalibrationConfig

    return CalibrationConfig(**{"num_samples": None, "max_pixels": None, **overrides})
