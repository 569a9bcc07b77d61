"""What bounds calibration (issue 4): visual tokens per sample, the max_length rule that never
cuts a vision span, deterministic selection, bad samples named or skipped and counted, and
per-sample processing that holds one sample's decoded media at a time."""

import gc
import json

import pytest
import torch
from PIL import Image

from qwen2vl_quant.calibration.batches import CalibrationSummary, build_samples, iter_samples
from qwen2vl_quant.calibration.budget import MediaShape, plan_sizes, visual_tokens
from qwen2vl_quant.calibration.errors import CalibrationDataError, Reason, SampleSkipped
from qwen2vl_quant.testing.sample_data import make_test_images, unbounded
from qwen2vl_quant.testing.tiny_model import build_processor


@pytest.fixture(scope="module")
def processor():
    return build_processor("tiny")  # at most 16 visual tokens per image, 3136 pixels at least


@pytest.fixture(scope="module")
def square(tmp_path_factory):
    """A 112x112 picture: 16 visual tokens at the tiny processor's bounds."""
    path = make_test_images(tmp_path_factory.mktemp("limits"), n=2, seed=4)[1]
    assert Image.open(path).size == (112, 112)
    return str(path)


def chat(*turns):
    """chat(user, assistant, user, ...) with str or item-list contents."""
    return [{"role": ("user", "assistant")[i % 2], "content": c} for i, c in enumerate(turns)]


def image_question(path, text="Describe this image."):
    return [{"type": "image", "image": path}, {"type": "text", "text": text}]


def ids_of(sample):
    return sample.inputs["input_ids"][0].tolist()


# ----------------------------------------------------------------------------- visual-token budget

def test_budget_plan_shrinks_all_items_and_refuses_the_impossible():
    shapes = [MediaShape(1000, 1000, 3136, 1_000_000), MediaShape(500, 1000, 3136, 1_000_000, frames=4, video=True)]
    free = plan_sizes(shapes, None)
    assert not free.downscaled and free.tokens > 1000
    fitted = plan_sizes(shapes, 300)
    assert fitted.downscaled and fitted.tokens <= 300
    assert fitted.tokens == sum(visual_tokens(h, w, s.frames, s.video) for s, (h, w) in zip(shapes, fitted.sizes))
    ratio = [(h / w) for h, w in fitted.sizes]
    assert ratio[0] == pytest.approx(1.0, abs=0.2) and ratio[1] == pytest.approx(0.5, abs=0.2)
    with pytest.raises(SampleSkipped, match="even at min_pixels") as skipped:
        plan_sizes(shapes, 5)
    assert skipped.value.reason == Reason.VISUAL_BUDGET


def test_samples_over_the_budget_are_downscaled_or_skipped(square, processor):
    two_images = chat([{"type": "image", "image": square}, *image_question(square)], "Two shapes.")
    samples, summary = build_samples([two_images], processor, unbounded())
    assert summary.image_tokens == 32 and summary.downscaled == 0
    samples, summary = build_samples([two_images], processor, unbounded(max_visual_tokens=20))
    assert 8 <= summary.image_tokens <= 20 and summary.downscaled == 1
    grid = samples[0].inputs["image_grid_thw"]
    assert int((grid.prod(-1) // 4).sum()) == summary.image_tokens  # the processor saw the planned sizes
    assert samples[0].inputs["pixel_values"].shape[0] == 4 * summary.image_tokens
    text_only = chat("Hi", "Hello.")
    samples, summary = build_samples([two_images, text_only], processor, unbounded(max_visual_tokens=7))
    assert summary.samples == 1 and summary.skipped == {Reason.VISUAL_BUDGET: 1}  # 2 x 4 tokens at min_pixels
    assert "skipped 1: 1 over the visual-token budget" in summary.describe()


def test_min_and_max_pixels_bound_each_image(square, processor):
    samples, summary = build_samples([chat(image_question(square), "A shape.")], processor, unbounded(max_pixels=28 * 28 * 4))
    assert summary.image_tokens == 4
    item = {"type": "image", "image": square, "max_pixels": 28 * 28 * 9}  # qwen-vl-utils' per-item bound
    samples, summary = build_samples([chat([item, {"type": "text", "text": "Hi"}], "A shape.")], processor, unbounded())
    assert summary.image_tokens == 9


# ----------------------------------------------------------------------------- max_length

def long_chat(square, turns=6, image_turn=0):
    contents = []
    for t in range(turns):
        question = f"Question {t}: tell me more about the colors and the shapes in the picture."
        contents.append(image_question(square, question) if t == image_turn else question)
        contents.append(f"Answer {t}: there is a red circle, a blue square and a green triangle on white.")
    return chat(*contents)


def test_long_samples_are_cut_only_at_a_message_boundary_after_the_last_image(square, processor):
    full, _ = build_samples([long_chat(square)], processor, unbounded())
    full_ids = ids_of(full[0])
    im_start = processor.tokenizer.convert_tokens_to_ids("<|im_start|>")
    max_length = len(full_ids) - 5
    samples, summary = build_samples([long_chat(square)], processor, unbounded(max_length=max_length))
    cut = ids_of(samples[0])
    assert summary.truncated == 1 and len(cut) <= max_length
    assert cut == full_ids[:len(cut)] and full_ids[len(cut)] == im_start  # a message boundary
    torch.testing.assert_close(samples[0].inputs["pixel_values"], full[0].inputs["pixel_values"], rtol=0, atol=0)
    assert summary.image_tokens == 16  # the image span is whole
    assert "1 truncated at a message boundary" in summary.describe()


def shortest_safe_cut(sample, processor):
    """Tokens up to the start of the last message (the image is in the one before it)."""
    ids = ids_of(sample)
    return max(i for i, t in enumerate(ids) if t == processor.tokenizer.convert_tokens_to_ids("<|im_start|>"))


def test_long_samples_that_cannot_be_cut_safely_are_skipped(square, processor):
    late_image = long_chat(square, image_turn=5)  # the image is in the last user message
    short = chat("Hi", "Hello.")
    full, _ = build_samples([late_image], processor, unbounded())
    text_it_must_keep = shortest_safe_cut(full[0], processor) - 16
    samples, summary = build_samples([late_image, short], processor, unbounded(max_length=text_it_must_keep - 1))
    assert summary.samples == 1 and summary.skipped == {Reason.TOO_LONG: 1}
    # With truncation off a sample whose text alone is too long is skipped, even one that could be cut.
    samples, summary = build_samples([long_chat(square), short], processor,
                                     unbounded(max_length=len(ids_of(full[0])) - 17, truncate_long_samples=False))
    assert summary.samples == 1 and summary.skipped == {Reason.TOO_LONG: 1}


def test_images_shrink_to_leave_room_for_the_text_they_must_keep(square, processor):
    late_image = long_chat(square, image_turn=5)
    full, _ = build_samples([late_image], processor, unbounded())
    samples, summary = build_samples([late_image], processor, unbounded(max_length=shortest_safe_cut(full[0], processor) - 6))
    assert summary.downscaled == 1 and summary.truncated == 1 and summary.image_tokens <= 10


# ----------------------------------------------------------------------------- selection

@pytest.fixture(scope="module")
def many(square):
    return [chat(image_question(square, f"Picture {i}?") if i % 3 == 0 else f"Question {i}?", f"Answer {i}.")
            for i in range(12)]


def test_selection_is_deterministic(many, processor):
    first, _ = build_samples(many, processor, unbounded(num_samples=5, seed=0))
    again, _ = build_samples(many, processor, unbounded(num_samples=5, seed=0))
    assert [s.name for s in first] == [s.name for s in again]
    for a, b in zip(first, again):
        for key in a.inputs:
            torch.testing.assert_close(a.inputs[key], b.inputs[key], rtol=0, atol=0)
    names = [int(s.name.split()[1]) for s in first]
    assert names == sorted(names)  # data order unless shuffled
    other, _ = build_samples(many, processor, unbounded(num_samples=5, seed=1))
    assert [s.name for s in other] != [s.name for s in first]
    shuffled, _ = build_samples(many, processor, unbounded(num_samples=5, seed=0, shuffle=True))
    again_shuffled, _ = build_samples(many, processor, unbounded(num_samples=5, seed=0, shuffle=True))
    assert [s.name for s in shuffled] == [s.name for s in again_shuffled]
    assert [int(s.name.split()[1]) for s in shuffled] != sorted(int(s.name.split()[1]) for s in shuffled)


def test_skipped_samples_are_replaced_from_the_same_seeded_order(many, processor, tmp_path):
    broken = [chat(image_question(str(tmp_path / f"missing{i}.png")), "x") for i in range(6)]
    samples, summary = build_samples(broken + many, processor, unbounded(num_samples=8, seed=0, skip_bad_samples=True))
    assert summary.samples == 8 and all(int(s.name.split()[1]) >= 6 for s in samples)
    assert summary.skipped == {Reason.MISSING_FILE: sum(summary.skipped.values())} and summary.skipped


# ----------------------------------------------------------------------------- bad samples

@pytest.fixture()
def bad_file(tmp_path, square):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    lines = [
        json.dumps(chat("Good one?", "Yes.")),
        json.dumps(chat(image_question("missing.png"), "x")),
        json.dumps(chat(image_question("broken.png"), "x")),
        json.dumps([{"role": "user", "content": [{"type": "audio", "audio": "a.wav"}]}]),
        json.dumps([]),
        json.dumps(chat("", "")),
        "{not json",
        json.dumps([{"role": "tool", "content": "x"}]),
        json.dumps(chat(image_question(square), "Good too.")),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("line, message", [
    (2, r"image not found: .*missing\.png"),
    (3, r"cannot read image .*broken\.png"),
    (4, "message 0: unsupported content type 'audio'"),
    (5, "non-empty list of messages"),
    (6, "no text, image or video"),
    (7, "not valid JSON"),
    (8, r"message 0: needs a role in \('system', 'user', 'assistant'\)"),
])
def test_bad_samples_are_named_by_file_and_line(bad_file, processor, line, message):
    keep = bad_file.read_text().splitlines()
    only = bad_file.with_name(f"only{line}.jsonl")
    only.write_text(keep[0] + "\n" + keep[line - 1] + "\n")
    with pytest.raises(CalibrationDataError, match=rf"^only{line}\.jsonl:2: .*{message}"):
        build_samples(only, processor, unbounded())


def test_skip_bad_samples_counts_each_reason(bad_file, processor):
    samples, summary = build_samples(bad_file, processor, unbounded(skip_bad_samples=True))
    assert [s.name for s in samples] == ["bad.jsonl:1", "bad.jsonl:9"]
    assert summary.skipped == {Reason.MISSING_FILE: 1, Reason.BAD_IMAGE: 1, Reason.UNSUPPORTED: 1,
                               Reason.EMPTY: 2, Reason.INVALID_JSON: 1, Reason.INVALID_FORMAT: 1}
    assert summary.describe().endswith("; skipped 7: 1 missing file, 1 unreadable image, 1 unsupported content, "
                                       "2 empty conversation, 1 invalid JSON, 1 invalid conversation")
    assert summary.describe().startswith(f"2 samples ({bad_file}: 2): ")


def test_nothing_usable_is_an_error(processor, tmp_path):
    with pytest.raises(CalibrationDataError, match=r"no usable calibration samples .*skipped 2: 2 missing file"):
        build_samples([chat(image_question(str(tmp_path / "gone.png")), "x")] * 2, processor,
                      unbounded(skip_bad_samples=True))
    with pytest.raises(CalibrationDataError, match="calibration data is empty"):
        build_samples([], processor, unbounded())


# ----------------------------------------------------------------------------- memory

def live_images():
    return sum(issubclass(type(o), Image.Image) for o in gc.get_objects())


class CountingProcessor:
    """The real processor, recording at each call how many PIL images are alive and how
    large the ones it is given are."""

    def __init__(self, processor):
        self._processor = processor
        self.live, self.pixels = [], []

    def __getattr__(self, name):
        return getattr(self._processor, name)

    def __call__(self, **kwargs):
        gc.collect()
        self.live.append(live_images())
        frames = kwargs.get("images", []) + [f for video in kwargs.get("videos", []) for f in video]
        self.pixels += [image.width * image.height for image in frames]
        return self._processor(**kwargs)


def test_processing_holds_one_samples_media_at_a_time(tmp_path, processor):
    big = []
    for i in range(3):
        path = tmp_path / f"photo{i}.jpg"
        Image.new("RGB", (1600, 1200), ("red", "green", "blue")[i]).save(path, quality=80)
        big.append(str(path))
    convs = [chat(image_question(big[i % 3]), "A colored photo.") for i in range(6)]
    convs.append(chat([{"type": "image", "image": big[0]}, *image_question(big[1])], "Two photos."))
    counting = CountingProcessor(processor)
    gc.collect()
    before = live_images()
    summary = CalibrationSummary()
    stream = iter_samples(convs, counting, summary, unbounded(max_pixels=28 * 28 * 16))
    first = next(stream)
    assert len(counting.live) == 1  # a generator: the first sample is ready before the second is read
    samples = [first, *stream]
    assert len(samples) == 7
    # At each processor call only that sample's decoded images are alive (1, or 2 for the last).
    assert [n - before for n in counting.live] == [1] * 6 + [2]
    assert max(counting.pixels) <= 28 * 28 * 16  # never the full 1600x1200 decode
    gc.collect()
    assert live_images() == before
    for sample in samples:  # what a sample keeps: processor tensors, bounded by its visual tokens
        assert all(isinstance(v, torch.Tensor) for v in sample.inputs.values())
        assert sample.inputs["pixel_values"].shape[0] <= 4 * 16 * 2
