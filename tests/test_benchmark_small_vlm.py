"""The committed small VLM of the CI benchmark: its files, and held-out data that is never
calibration data."""

import hashlib
import json
import random
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
MODEL = BENCHMARKS / "models" / "small-vlm"

sys.path.insert(0, str(BENCHMARKS))
import shapes_task  # noqa: E402


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_committed_model_and_its_data():
    config = json.loads((MODEL / "config.json").read_text())
    assert config["text_config"]["hidden_size"] == 256 and config["text_config"]["num_hidden_layers"] == 4
    assert "quantization_config" not in config
    for name in ("model.safetensors", "tokenizer.json", "chat_template.jinja", "training.json"):
        assert (MODEL / name).is_file(), name
    weights = (MODEL / "model.safetensors").stat().st_size
    assert weights < 20 * 2**20  # a few MB, committed

    heldout = [json.loads(line) for line in (MODEL / "heldout_vqa.jsonl").read_text().splitlines()]
    assert len(heldout) >= 150
    for row in heldout:
        assert (MODEL / row["image"]).is_file() and row["question"] and row["answers"]
    calib = [json.loads(line) for line in (MODEL / "calib.jsonl").read_text().splitlines()]
    calib_images = {turn["content"][0]["image"] for conv in calib for turn in conv[:1]}
    assert len(calib) >= 16 and all((MODEL / p).is_file() for p in calib_images)
    # Never the calibration samples: no held-out picture is a calibration picture.
    held = {_digest(MODEL / r["image"]) for r in heldout}
    assert not held & {_digest(MODEL / p) for p in calib_images}



def test_the_committed_model_answers_its_held_out_questions():
    """Measured here, not read from training.json: the BF16 model's exact-match accuracy on
    the held-out VQA file, as the CI benchmark measures it (issue 5 asks for 80 %+)."""
    from qwen2vl_quant.benchmark import QualityConfig, run_benchmark

    report = run_benchmark(MODEL, quality=QualityConfig(vqa=str(MODEL / "heldout_vqa.jsonl"), max_new_tokens=8),
                           device="cpu", threads=2, show_progress=False)
    (bf16,) = report.quality
    assert bf16.error is None and bf16.exact_match >= 0.8, bf16


@pytest.mark.parametrize("seed", range(3))
def test_no_answer_can_be_read_off_an_earlier_turn(seed):
    rng = random.Random(seed)
    asked = {"color": 0, "yes/no": 0}
    for _ in range(200):
        scene = shapes_task.random_scene(rng)
        qa = shapes_task.questions(scene, rng, describe=True)
        kinds = [shapes_task.question_type(q) for q, _ in qa]
        assert qa[-1][0] == "Describe the picture." and len(kinds) == len(set(kinds)) == 5
        # One color per picture: the color and the yes/no question tell each other's
        # answer, so a conversation asks one of them.
        assert {"count", "digit", "shape"} < set(kinds) and len({"color", "yes/no"} & set(kinds)) == 1
        asked["color" if "color" in kinds else "yes/no"] += 1
        kinds_alone = {shapes_task.question_type(q) for q, _ in shapes_task.questions(scene, rng, conversation=False)}
        assert kinds_alone == {"count", "digit", "shape", "color", "yes/no"}  # the held-out file asks all
    assert min(asked.values()) > 60
