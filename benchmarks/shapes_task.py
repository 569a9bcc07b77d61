"""The synthetic visual task the small benchmark VLM is trained on: shapes, colors, a digit.

Each picture (112x112 px, 16 visual tokens for Qwen2-VL) is a 2x2 grid on a white
background: one to three shapes (circle, square, triangle; distinct kinds, distinct
colors) in the top-left, top-right and bottom-left cells, and a large black seven-segment
digit in the bottom-right cell. The questions about a picture and their answers:

    How many shapes are there?                 1 | 2 | 3       (the digit is not a shape)
    What color is the shape at the top left?   red | green | blue | yellow | purple
    What shape is at the bottom left?          circle | square | triangle
    What number is shown?                      0 .. 9
    Is there a red shape?                      yes | no

Questions name places, not shapes, so that answering needs recognition but not a search
for the shape a question names (a model of this size learned the latter far more slowly).
A training conversation asks four or five questions about one picture as one multi-turn
chat with the loss on every answer (DESIGN.md section 4: with one question per picture
a model of this size stalled near 38 %); no answer can be read off an earlier turn (see
``questions``). Everything is drawn from a seed, so the training stream, the calibration
file and the held-out file are disjoint by seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

IMAGE_SIZE = 112  # 4x4 merged visual tokens of 28x28 px
CELL = IMAGE_SIZE // 2
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (240, 210, 0),
    "purple": (140, 40, 180),
}
SHAPES = ("circle", "square", "triangle")
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
    cells = rng.sample(range(3), n)
    kinds = rng.sample(SHAPES, n)
    colors = rng.sample(sorted(COLORS), n)
    shapes = tuple(zip(kinds, colors, cells))
    return Scene(shapes, str(rng.randrange(10)), DIGIT_CELL)


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
        fill = COLORS[color]
        if kind == "circle":
            draw.ellipse(box, fill=fill)
        elif kind == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=fill)
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


PLACES = ("top left", "top right", "bottom left")  # cells 0, 1, 2


def questions(scene: Scene, rng: random.Random, describe: bool = False) -> list[tuple[str, str]]:
    """The questions about a scene with their answers, for one multi-turn conversation.

    No answer can be read off an earlier turn, so that the model must look at the picture
    (a single question after the picture is what the held-out file asks): the color and
    the shape questions are about different cells (only one of them is asked when there
    is one shape), and the yes/no question comes before any answer that names its color.
    Otherwise the order is random, so every kind of question is also asked first.

    describe: end with "Describe the picture." and a full description (every shape in
    reading order, then the digit): dense supervision of everything visible, last so that
    it gives nothing away.
    """
    qa = [("How many shapes are there?", str(len(scene.shapes))), ("What number is shown?", scene.digit)]
    pair = rng.sample(scene.shapes, 2) if len(scene.shapes) > 1 else [scene.shapes[0]] * 2
    (_, color_a, cell_a), (kind_b, _, cell_b) = pair
    color_q = (f"What color is the shape at the {PLACES[cell_a]}?", color_a)
    shape_q = (f"What shape is at the {PLACES[cell_b]}?", kind_b)
    qa += [color_q, shape_q] if len(scene.shapes) > 1 else [rng.choice([color_q, shape_q])]
    rng.shuffle(qa)
    asked = rng.choice(sorted(COLORS))
    yes_no = (f"Is there a {asked} shape?", "yes" if any(c == asked for _, c, _ in scene.shapes) else "no")
    giveaways = [i for i, (_, answer) in enumerate(qa) if answer == asked]
    qa.insert(min(giveaways, default=rng.randint(0, len(qa))), yes_no)
    if describe:
        qa.append(("Describe the picture.", description(scene)))
    return qa


def description(scene: Scene) -> str:
    """E.g. "an orange circle, a blue square and the number 7" (shapes in reading order)."""
    shapes = [f"{'an' if color[0] in 'aeiou' else 'a'} {color} {kind}"
              for kind, color, _ in sorted(scene.shapes, key=lambda s: s[2])]
    return ", ".join(shapes) + f" and the number {scene.digit}"


def question_type(question: str) -> str:
    """count | digit | color | shape | yes/no, for per-type accuracy."""
    for prefix, kind in (("How many", "count"), ("What number", "digit"), ("What color", "color"),
                         ("What shape", "shape"), ("Is there", "yes/no"), ("Describe", "description")):
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


def write_pictures(directory: Path, prefix: str, count: int, seed: int,
                   describe: bool = False) -> list[tuple[Path, list[tuple[str, str]]]]:
    """Draw ``count`` pictures into ``directory``; return (path, questions) for each."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    out = []
    for i in range(count):
        scene = random_scene(rng)
        path = directory / f"{prefix}_{i:03d}.png"
        draw_scene(scene, rng).save(path, optimize=True)
        out.append((path, questions(scene, rng, describe)))
    return out
