"""Every user mistake: one clear line on stderr, a non-zero exit, nothing written."""

import json
import shutil
import subprocess
import sys

import pytest

from qwen2vl_quant.cli import main


@pytest.fixture()
def calib_file(tmp_path, calib_conversations):
    path = tmp_path / "calib.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in calib_conversations[:2]))
    return path


def run_cli(capsys, *args):
    code = main(list(map(str, args)))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def assert_one_line_error(code, err, expected):
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert expected in err[0], err[0]


def assert_nothing_written(out):
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}*"))


def test_group_size_that_does_not_divide(capsys, tiny_model_dir, calib_file, tmp_path):
    out = tmp_path / "out"
    code, err = run_cli(capsys, "gptq", "--bits", "4", "--group-size", "128", "--calib", calib_file, tiny_model_dir, out)
    assert_one_line_error(code, err, "group size 128 does not divide")
    assert_nothing_written(out)


@pytest.mark.parametrize("content, expected", [
    ("", "holds no conversations"),
    ("{not json\n", "not valid JSON"),
    (json.dumps([{"role": "user", "content": [{"type": "audio", "audio": "x.wav"}]}]) + "\n", "unsupported content type"),
    (json.dumps([{"role": "user", "content": [{"type": "image", "image": "missing.png"}]}]) + "\n", "image not found"),
    (json.dumps([]) + "\n", "non-empty list of messages"),
])
def test_bad_calibration_files(capsys, tiny_model_dir, tmp_path, content, expected):
    calib = tmp_path / "bad.jsonl"
    calib.write_text(content)
    out = tmp_path / "out"
    code, err = run_cli(capsys, "gptq", "--bits", "4", "--group-size", "32", "--calib", calib, tiny_model_dir, out)
    assert_one_line_error(code, err, expected)
    assert_nothing_written(out)


def test_corrupt_image(capsys, tiny_model_dir, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    calib = tmp_path / "c.jsonl"
    calib.write_text(json.dumps([{"role": "user", "content": [{"type": "image", "image": "broken.png"},
                                                              {"type": "text", "text": "hi"}]}]) + "\n")
    code, err = run_cli(capsys, "gptq", "--bits", "4", "--group-size", "32", "--calib", calib, tiny_model_dir, tmp_path / "o")
    assert_one_line_error(code, err, "cannot read image")


def test_missing_model_dir(capsys, tmp_path, calib_file):
    code, err = run_cli(capsys, "gptq", "--bits", "4", "--calib", calib_file, tmp_path / "nope", tmp_path / "out")
    assert_one_line_error(code, err, "model directory not found")


def test_not_a_qwen2vl_model(capsys, tmp_path, calib_file):
    model = tmp_path / "llama"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    code, err = run_cli(capsys, "gptq", "--bits", "4", "--calib", calib_file, model, tmp_path / "out")
    assert_one_line_error(code, err, "a 'llama' model is not supported; qwen2vl-quant handles 'qwen2_vl', "
                                     "'qwen2_5_vl', 'qwen3_vl'")


def copy_model(src, dst, skip=()):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*skip))
    return dst


def test_model_without_processor(capsys, tiny_model_dir, tmp_path, calib_file):
    model = copy_model(tiny_model_dir, tmp_path / "m", skip=("processor_config.json", "preprocessor_config.json"))
    code, err = run_cli(capsys, "gptq", "--bits", "4", "--group-size", "32", "--calib", calib_file, model, tmp_path / "out")
    assert_one_line_error(code, err, "has no processor")


def test_broken_weights(capsys, tiny_model_dir, tmp_path, calib_file):
    model = copy_model(tiny_model_dir, tmp_path / "m")
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    code, err = run_cli(capsys, "gptq", "--bits", "4", "--group-size", "32", "--calib", calib_file, model, tmp_path / "out")
    assert_one_line_error(code, err, "cannot read weights")


def test_missing_tensors(capsys, tiny_sharded_model_dir, tmp_path, calib_file):
    model = copy_model(tiny_sharded_model_dir, tmp_path / "m")
    index = json.loads((model / "model.safetensors.index.json").read_text())
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if "layers.1.mlp" not in k}
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    code, err = run_cli(capsys, "gptq", "--bits", "4", "--group-size", "32", "--calib", calib_file, model, tmp_path / "out")
    assert_one_line_error(code, err, "weights are missing")


def test_dynamic_groups_need_act_order(capsys, tiny_model_dir, tmp_path, calib_file):
    """Act-order is the default; --dynamic-groups with --no-desc-act would silently mean nothing."""
    out = tmp_path / "out"
    code, err = run_cli(capsys, "gptq", "--bits", "4", "--group-size", "32", "--no-desc-act", "--dynamic-groups",
                        "--calib", calib_file, tiny_model_dir, out)
    assert_one_line_error(code, err, "--dynamic-groups is a kind of act-order")
    assert_nothing_written(out)


def test_existing_output_is_refused_without_overwrite(capsys, tiny_model_dir, tmp_path, calib_file):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    code, err = run_cli(capsys, "gptq", "--bits", "4", "--group-size", "32", "--calib", calib_file, tiny_model_dir, out)
    assert_one_line_error(code, err, "not an output of qwen2vl-quant")
    assert (out / "precious.txt").read_text() == "keep me"


def test_output_inside_the_input_is_refused(capsys, tiny_model_dir, calib_file):
    code, err = run_cli(capsys, "gptq", "--bits", "4", "--group-size", "32", "--calib", calib_file, tiny_model_dir,
                        tiny_model_dir / "quantized")
    assert_one_line_error(code, err, "overlaps the input model")


def test_console_script_usage_errors_and_help(tmp_path):
    exe = [sys.executable, "-m", "qwen2vl_quant.cli"]
    bad_bits = subprocess.run(exe + ["gptq", "--bits", "3", "a", "b"], capture_output=True, text=True)
    assert bad_bits.returncode == 2 and "invalid choice: 3" in bad_bits.stderr
    assert "Traceback" not in bad_bits.stderr
    helped = subprocess.run(exe + ["gptq", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0
    for option in ("--bits", "--group-size", "--asym", "--desc-act", "--no-desc-act", "--dynamic-groups", "--damp", "--calib",
                   "--num-samples", "--max-shard-size", "--seed", "--device", "--overwrite", "--resume"):
        assert option in helped.stdout
