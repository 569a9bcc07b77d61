"""The benchmark harness on the tiny model: README-shaped speed and quality tables, the
kernel path column, per-run isolation, failures kept in their rows, the CLI, the metrics."""

import argparse
import json
import math
import shutil

import pytest
from PIL import Image

from qwen2vl_quant.api import quantize_checkpoint
from qwen2vl_quant.benchmark import QualityConfig, SpeedConfig, run_benchmark
from qwen2vl_quant.benchmark.cli import add_bench_parser
from qwen2vl_quant.benchmark.quality import EvalDataError, anls, answer_positions, exact_match, levenshtein, \
    normalize_answer
from qwen2vl_quant.config import RTNConfig
from qwen2vl_quant.errors import ConfigError, ModelLoadError, QuantError
from qwen2vl_quant.kernels.dispatch import PATHS

README_COLUMNS = "| Model | Input Length | Quantization | GPU Num | Speed (tokens/s) |"


@pytest.fixture(scope="module")
def rtn_dir(tiny_model_dir, calib_conversations, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "rtn-int4"
    quantize_checkpoint(tiny_model_dir, out, RTNConfig(bits=4, group_size=32), calib_data=calib_conversations,
                        device="cpu", show_progress=False)
    return out


@pytest.fixture(scope="module")
def vqa_file(test_images, tmp_path_factory):
    """Held-out questions about the test pictures (relative paths), in the VQA file format."""
    folder = tmp_path_factory.mktemp("vqa")
    rows = []
    for i, path in enumerate(test_images[:3]):
        shutil.copy(path, folder / path.name)
        answer = Image.open(path).text["Description"]
        rows.append({"image": path.name, "question": "Describe this image.", "answers": [answer, f"shape {i}"]})
    (folder / "vqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder / "vqa.jsonl"


def test_speed_and_quality_tables(tiny_model_dir, rtn_dir, vqa_file, tmp_path):
    report = run_benchmark(
        tiny_model_dir, [str(rtn_dir)], device="cpu", threads=1, show_progress=False, name="tiny",
        speed=SpeedConfig(input_lengths=(1, 8), new_tokens=3, image_size=56, isolate=False),
        quality=QualityConfig(vqa=str(vqa_file), max_new_tokens=4))
    assert not report.failures(), report.failures()

    text = [r for r in report.speed if r.kind == "text"]
    assert [(r.input_length, r.quantization) for r in text] == [
        (1, "BF16"), (1, "RTN-Int4"), (8, "BF16"), (8, "RTN-Int4")]
    for r in text:
        assert r.new_tokens == 3 and r.tokens_per_s > 0 and 0 < r.prefill_s and len(r.seconds) == 1
        assert r.gpu_num == 0 and r.memory_kind == "process_peak_rss" and r.memory_bytes > 0
    assert text[0].kernel_path == "bf16 (torch)"
    quantized_path = text[-1].kernel_path
    assert quantized_path and any(p in quantized_path for p in PATHS), quantized_path
    image = [r for r in report.speed if r.kind == "image"]
    assert len(image) == 2 and all(r.image_tokens > 0 and r.input_length > r.image_tokens for r in image)
    assert all(r.prefill_s > 0 for r in image)

    bf16, rtn = report.quality
    assert bf16.reference and bf16.kl == 0.0 and bf16.top1_agreement == 1.0
    assert rtn.kl > 0 and 0 <= rtn.top1_agreement <= 1
    assert bf16.samples == rtn.samples == 3 and bf16.vqa_questions == 3 and bf16.answer_tokens > 3
    assert math.isfinite(rtn.answer_ppl) and rtn.answer_ppl > 1
    assert 0 <= rtn.exact_match <= 1 and 0 <= rtn.anls <= 1
    assert rtn.kernel_path and rtn.kernel_path != "bf16 (torch)"

    speed_md, quality_md = report.speed_markdown(), report.quality_markdown()
    assert README_COLUMNS in speed_md and "Kernel path" in speed_md and "Multimodal prefill" in speed_md
    assert "| Model Size | Quantization | vqa EM | vqa ANLS | KL to BF16 |" in quality_md
    written = report.write(tmp_path, "ci_")
    assert sorted(p.name for p in written) == ["ci_quality.json", "ci_quality.md", "ci_speed.json", "ci_speed.md"]
    data = json.loads((tmp_path / "ci_speed.json").read_text())
    for key in ("cpu", "cpu_cores", "ram_gib", "gpus", "versions", "git_commit", "device"):
        assert key in data["machine"]
    assert data["machine"]["versions"]["torch"] and data["machine"]["cpu"]
    assert len(data["rows"]) == 4 and len(data["image_rows"]) == 2


def test_isolated_run_has_its_own_peak_memory(tiny_model_dir):
    report = run_benchmark(tiny_model_dir, device="cpu", threads=1, show_progress=False,
                           speed=SpeedConfig(input_lengths=(4,), new_tokens=2, image_size=0))
    (run,) = report.speed
    assert run.error is None and run.memory_kind == "peak_rss" and run.tokens_per_s > 0
    assert run.memory_bytes >= run.baseline_rss_bytes > 0  # that process's peak, from its start


def test_a_failed_run_is_kept_in_its_row(tiny_model_dir, rtn_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(rtn_dir, broken)
    for shard in broken.glob("*.safetensors"):
        shard.write_bytes(shard.read_bytes()[:1000])  # truncated: loading it fails
    report = run_benchmark(tiny_model_dir, [f"Broken={broken}"], device="cpu", threads=1, show_progress=False,
                           speed=SpeedConfig(input_lengths=(2, 3), new_tokens=2, image_size=0, isolate=False))
    assert [(r.quantization, r.input_length, r.error is None) for r in report.speed] == [
        ("BF16", 2, True), ("Broken", 2, False), ("BF16", 3, True), ("Broken", 3, False)]
    bad = report.speed[1]
    assert bad.error and "\n" not in bad.error
    assert report.failures()[0] == f"Broken speed 2 tokens: {bad.error}"
    assert bad.error in report.speed_markdown() and "2 run(s) failed" in report.speed_markdown()
    # The command line exits non-zero when a run failed, and says which on stderr.
    parser = argparse.ArgumentParser()
    add_bench_parser(parser.add_subparsers())
    args = parser.parse_args(["bench", str(tiny_model_dir), f"Broken={broken}", "--no-isolate", "--input-lengths", "2",
                              "--new-tokens", "2", "--image-size", "0", "--out", str(tmp_path / "r"), "-q",
                              "--threads", "1"])
    assert args.run(args) == 1


def test_cli(tiny_model_dir, rtn_dir, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_bench_parser(parser.add_subparsers())
    args = parser.parse_args(["bench", str(tiny_model_dir), f"Int4={rtn_dir}", "--no-isolate", "--input-lengths", "2",
                              "--new-tokens", "2", "--image-size", "0", "--out", str(tmp_path), "-q", "--threads", "1"])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert README_COLUMNS in out and "Int4" in out and "quality table skipped" in out
    assert (tmp_path / "speed.md").is_file() and not (tmp_path / "quality.md").exists()

    def run(*argv):
        args = parser.parse_args(["bench", *map(str, argv)])
        return args.run(args)

    with pytest.raises(ModelLoadError):
        run(tmp_path / "missing", "--no-isolate")
    with pytest.raises(ConfigError):
        run(tiny_model_dir, f"A={rtn_dir}", f"A={rtn_dir}", "--no-isolate")
    with pytest.raises(ConfigError):
        run(rtn_dir, "--no-isolate")  # the first model must be the unquantized one
    with pytest.raises(EvalDataError):
        run(tiny_model_dir, "--vqa", tmp_path / "none.jsonl")
    with pytest.raises(QuantError):
        run(tiny_model_dir, "--no-speed")  # nothing to measure
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", str(tiny_model_dir), "--input-lengths", "0,x"])


def test_bad_vqa_file_is_a_user_error(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "a.png", "question": "Why?"}\n')
    with pytest.raises(EvalDataError, match="answers"):
        run_benchmark(tiny_model_dir, quality=QualityConfig(vqa=str(bad)), device="cpu", show_progress=False)


def test_answer_positions_cover_every_answer_and_its_end(tiny_model_dir):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    conversation = [{"role": "user", "content": "Count."}, {"role": "assistant", "content": "one two"},
                    {"role": "user", "content": "Again."}, {"role": "assistant", "content": "three"}]
    text = processor.apply_chat_template(conversation, tokenize=False)
    ids = processor.tokenizer(text, return_tensors="pt")["input_ids"][0]
    header = processor.tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    positions, targets, last = answer_positions(ids, header, end)
    answer_tokens = [processor.tokenizer(a, add_special_tokens=False)["input_ids"] for a in ("one two", "three")]
    assert targets.tolist() == answer_tokens[0] + [end] + answer_tokens[1] + [end]
    assert (ids[positions + 1] == targets).all()
    assert ids[last:last + len(answer_tokens[1])].tolist() == answer_tokens[1]


def test_vqa_metrics():
    assert normalize_answer("  The Red, circle. ") == "red circle"
    assert exact_match("a red circle", ["Red circle!"]) == 1.0
    assert exact_match("red", ["blue", "green"]) == 0.0
    assert levenshtein("kitten", "sitting") == 3
    assert anls("Red", ["red"]) == 1.0
    assert anls("reed", ["red"]) == pytest.approx(0.75)  # NL 1/4 < 0.5
    assert anls("blue", ["red"]) == 0.0  # NL >= 0.5 scores 0
    assert anls("1999", ["1998", "nineteen"]) == pytest.approx(0.75)  # best over answers
