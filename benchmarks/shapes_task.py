"""The synthetic visual task the small benchmark VLM is trained on: shapes, colors, a digit.

Each picture (112x112 px, 16 visual tokens for Qwen2-VL) is a 2x2 grid on a white
background: one to three shapes of one kind and one color (circle, square, triangle;
red, green, blue, yellow, purple) in some of the top-left, top-right and bottom-left
cells, and a large black seven-segment digit in the bottom-right cell. The questions
about a picture and their answers:

    How many shapes are there?        1 | 2 | 3       (the digit is not a shape)
    What color are the shapes?        red | green | blue | yellow | purple
    What kind of shape is drawn?      circle | square | triangle
    What number is shown?             0 .. 9
    Is there a red shape?             yes | no

Every answer is a property of the whole picture. An earlier version drew shapes of
different kinds and colors and asked for the color or the shape at a named place: the
3.2 M-parameter model never learned to bind a place to a shape (held-out accuracy 53 %
for the color at a place, 36 % for the shape, chance 20 % and 33 %) and stalled at
76.6 % overall, while it counted and read digits perfectly.
A training conversation asks four of the five questions about one picture as one
multi-turn chat with the loss on every answer (DESIGN.md section 4: with one question per picture
a model of this size stalled near 38 %); no answer can be read off an earlier turn (see
``questions``). Everything is drawn from a seed, so the training stream, the calibration
file and the held-out file are disjoint by seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from qwen2vl_quant.testing.sample_data import SHAPES, draw_shape

IMAGE_SIZE = 112  # 4x4 merged visual tokens of 28x28 px
CELL = IMAGE_SIZE // 2
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (240, 210, 0),
    "purple": (140, 40, 180),
}
# Seven-segment digits: segments a (top), b (top right), c (bottom right), d (bottom),
# e (bottom left), f (top left), g (middle).
SEGMENTS = {
    "0": "abcdef", "1": "bc", "2": "abged", "3": "abgcd", "4": "fgbc",
    "5": "afgcd", "6": "afgedc", "7": "abc", "8": "abcdefg", "9": "abcdfg",
}


@dataclass(frozen=True)
class Scene:
    """What a picture shows: (shape, color, cell) per shape, and the digit and its cell."""

    shapes: tuple[tuple[str, str, int], ...]
    digit: str
    digit_cell: int


DIGIT_CELL = 3  # bottom right: the digit is always read from the same place


def random_scene(rng: random.Random) -> Scene:
    n = rng.randint(1, 3)
    cells = sorted(rng.sample(range(3), n))
    kind, color = rng.choice(SHAPES), rng.choice(sorted(COLORS))
    return Scene(tuple((kind, color, cell) for cell in cells), str(rng.randrange(10)), DIGIT_CELL)


def draw_scene(scene: Scene, rng: random.Random) -> Image.Image:
    """The picture of a scene; positions and sizes jitter a little within each cell."""
    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for kind, color, cell in scene.shapes:
        x0, y0 = (cell % 2) * CELL, (cell // 2) * CELL
        size = rng.randint(40, 50)
        left = x0 + rng.randint(3, CELL - size - 3)
        top = y0 + rng.randint(3, CELL - size - 3)
        box = (left, top, left + size, top + size)
        draw_shape(draw, kind, box, COLORS[color])
    _draw_digit(draw, scene.digit, scene.digit_cell, rng)
    return img


def _draw_digit(draw: ImageDraw.ImageDraw, digit: str, cell: int, rng: random.Random) -> None:
    width, height, thick = rng.randint(32, 40), rng.randint(44, 50), rng.randint(8, 10)
    left = (cell % 2) * CELL + rng.randint(2, CELL - width - 2)
    top = (cell // 2) * CELL + rng.randint(2, CELL - height - 2)
    mid = top + height // 2
    right, bottom = left + width, top + height
    boxes = {
        "a": (left, top, right, top + thick), "g": (left, mid - thick // 2, right, mid + thick - thick // 2),
        "d": (left, bottom - thick, right, bottom), "f": (left, top, left + thick, mid),
        "b": (right - thick, top, right, mid), "e": (left, mid, left + thick, bottom),
        "c": (right - thick, mid, right, bottom),
    }
    for segment in SEGMENTS[digit]:
        draw.rectangle(boxes[segment], fill=(0, 0, 0))


def questions(scene: Scene, rng: random.Random, describe: bool = False,
              conversation: bool = True) -> list[tuple[str, str]]:
    """The questions about a scene with their answers.

    conversation=True (training and calibration): for one multi-turn conversation, in which
    no answer can be read off an earlier turn, so that the model must look at the picture.
    A picture has one color, so the color question and the yes/no question (is a named
    color present?) tell each other's answer: a conversation asks one of the two, each
    half the time. The wording of a question never depends on the count, and the order is
    random, so every kind of question is also asked first (as the held-out file asks it).
    conversation=False (the held-out file): all five, each to be asked on its own.

    describe: end with "Describe the picture." and a full description: dense supervision
    of everything visible. It comes last, so it gives no answer away; it may repeat
    earlier ones.
    """
    kind, color, _ = scene.shapes[0]
    qa = [("How many shapes are there?", str(len(scene.shapes))), ("What number is shown?", scene.digit),
          ("What kind of shape is drawn?", kind)]
    # Half yes, half no: a model that always says "no" gets 50 %, not 80 %.
    asked = color if rng.random() < 0.5 else rng.choice([c for c in sorted(COLORS) if c != color])
    color_q = ("What color are the shapes?", color)
    yes_no = (f"Is there a {asked} shape?", "yes" if asked == color else "no")
    if conversation:
        qa.append(color_q if rng.random() < 0.5 else yes_no)
    else:
        qa += [color_q, yes_no]
    rng.shuffle(qa)
    if describe:
        qa.append(("Describe the picture.", description(scene)))
    return qa


COUNT_WORDS = {1: "one", 2: "two", 3: "three"}


def description(scene: Scene) -> str:
    """E.g. "two blue squares and the number 7"."""
    kind, color, _ = scene.shapes[0]
    n = len(scene.shapes)
    return f"{COUNT_WORDS[n]} {color} {kind}{'s' if n > 1 else ''} and the number {scene.digit}"


def question_type(question: str) -> str:
    """count | digit | color | shape | yes/no, for per-type accuracy."""
    for prefix, kind in (("How many", "count"), ("What number", "digit"), ("What color", "color"),
                         ("What kind of shape", "shape"), ("Is there", "yes/no"), ("Describe", "description")):
        if question.startswith(prefix):
            return kind
    return "other"


def conversation(image: str, qa: list[tuple[str, str]]) -> list[dict]:
    """A multi-turn Qwen2-VL chat: the picture with the first question, then one turn per question."""
    messages = []
    for i, (question, answer) in enumerate(qa):
        content = [{"type": "image", "image": image}, {"type": "text", "text": question}] if i == 0 else question
        messages += [{"role": "user", "content": content}, {"role": "assistant", "content": answer}]
    return messages


def write_pictures(directory: Path, prefix: str, count: int, seed: int, describe: bool = False,
                   conversation: bool = True) -> list[tuple[Path, list[tuple[str, str]]]]:
    """Draw ``count`` pictures into ``directory``; return (path, questions) for each
    (``describe`` and ``conversation`` as in ``questions``)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    out = []
    for i in range(count):
        scene = random_scene(rng)
        path = directory / f"{prefix}_{i:03d}.png"
        draw_scene(scene, rng).save(path, optimize=True)
        out.append((path, questions(scene, rng, describe, conversation)))
    return out
