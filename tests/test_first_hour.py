"""A new user's first hour: nothing of theirs is deleted, every message is one true line and
comes early, and running from the repository root works (the PyPI ``kernels`` package that
transformers imports is not shadowed by our ``kernels/`` folder)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from qwen2vl_quant.calibration.batches import CalibrationSummary
from qwen2vl_quant.cli import build_parser, main
from qwen2vl_quant.errors import OutputError
from qwen2vl_quant.pipeline.output_dir import (
    MANIFEST,
    OutputLock,
    interrupted_message,
    lock_path,
    staging_path,
)

REPO = Path(__file__).resolve().parents[1]


def cli(*args, cwd=None, env=None):
    """The real console entry point in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "qwen2vl_quant.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env)


def one_line_error(result, expected):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0], lines[0]


@pytest.fixture()
def calib_file(tmp_path, calib_conversations):
    path = tmp_path / "calib.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in calib_conversations[:2]))
    return path


def quantize(model_dir, out, calib, *extra):
    return main(["gptq", "--bits", "4", "--group-size", "32", "--calib", str(calib), "--quiet", *extra,
                 str(model_dir), str(out)])


# -- nothing of the user's is lost --------------------------------------------------------


def test_overwrite_replaces_only_an_earlier_output_of_ours(tiny_model_dir, calib_file, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "notes.txt").write_text("mine")
    (photos / "holiday").mkdir()
    assert quantize(tiny_model_dir, photos, calib_file, "--overwrite") == 2
    assert "not an output of qwen2vl-quant" in capsys.readouterr().err
    assert (photos / "notes.txt").read_text() == "mine" and (photos / "holiday").is_dir()

    out = tmp_path / "out"
    assert quantize(tiny_model_dir, out, calib_file) == 0
    listed = set(json.loads((out / MANIFEST).read_text())["files"])
    assert listed == {p.name for p in out.iterdir()} - {MANIFEST} and "config.json" in listed
    assert quantize(tiny_model_dir, out, calib_file) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert quantize(tiny_model_dir, out, calib_file, "--overwrite") == 0

    (out / "my_eval_results.txt").write_text("keep me")
    assert quantize(tiny_model_dir, out, calib_file, "--overwrite") == 2
    err = capsys.readouterr().err
    assert "did not write (my_eval_results.txt)" in err and len(err.strip().splitlines()) == 1
    assert (out / "my_eval_results.txt").read_text() == "keep me"


def test_a_partial_run_is_never_deleted_without_being_asked(tiny_model_dir, calib_file, tmp_path, capsys):
    out = tmp_path / "out"
    partial = staging_path(out)
    partial.mkdir()
    (partial / "state.json").write_text(json.dumps({"fingerprint": "x", "finished_layers": 1, "total_layers": 2,
                                                    "captured": True}))
    assert quantize(tiny_model_dir, out, calib_file) == 2
    err = capsys.readouterr().err.strip()
    assert "1 of 2 layers finished" in err and "--resume" in err and f"delete {partial}" in err
    assert (partial / "state.json").is_file()
    # ... and a resume with other options says how to start over, keeping it too.
    assert quantize(tiny_model_dir, out, calib_file, "--resume") == 2
    err = capsys.readouterr().err.strip()
    assert "other inputs or options" in err and f"delete {partial}" in err
    assert (partial / "state.json").is_file()


def test_a_partial_folder_without_finished_work_is_replaced(tiny_model_dir, calib_file, tmp_path):
    out = tmp_path / "out"
    partial = staging_path(out)
    partial.mkdir()
    (partial / "state.json").write_text(json.dumps({"fingerprint": "x", "finished_layers": 0, "captured": False}))
    assert quantize(tiny_model_dir, out, calib_file) == 0
    assert out.is_dir() and not partial.exists() and not lock_path(out).exists()


def test_the_current_directory_is_refused_before_any_work(tiny_model_dir, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    for target in (".", str(tmp_path)):
        result = cli("gptq", "--bits", "4", "--group-size", "32", tiny_model_dir, target, cwd=work)
        one_line_error(result, "is the current directory or contains it")
    assert not list(tmp_path.glob(".*"))


def test_two_runs_on_one_output_do_not_race(tiny_model_dir, calib_file, tmp_path, capsys):
    out = tmp_path / "out"
    with OutputLock(out):
        assert quantize(tiny_model_dir, out, calib_file) == 2
        err = capsys.readouterr().err
        assert f"another qwen2vl-quant run (process {os.getpid()}) is writing" in err
        with pytest.raises(OutputError, match="another qwen2vl-quant run"):
            OutputLock(out).__enter__()
    assert not out.exists() and not lock_path(out).exists()
    # A lock left by a killed run (its process gone, so no flock is held) is taken over.
    lock_path(out).write_text("999999")
    assert quantize(tiny_model_dir, out, calib_file) == 0
    assert not lock_path(out).exists()


def test_interrupt_messages_say_what_is_resumable(tmp_path):
    out = tmp_path / "out"
    assert "nothing to resume" in interrupted_message(out)
    partial = staging_path(out)
    partial.mkdir()
    (partial / "state.json").write_text(json.dumps({"fingerprint": "x", "finished_layers": 0, "captured": False}))
    assert "nothing to resume" in interrupted_message(out)
    (partial / "state.json").write_text(json.dumps({"fingerprint": "x", "finished_layers": 3, "total_layers": 28,
                                                    "captured": True}))
    message = interrupted_message(out)
    assert "3 of 28 layers finished" in message and "--resume" in message and str(partial) in message


# -- every message true, and early ---------------------------------------------------------


@pytest.fixture(scope="module")
def no_torch_env(tmp_path_factory):
    """An environment in which importing torch or transformers fails loudly."""
    poison = tmp_path_factory.mktemp("poison")
    for name in ("torch", "transformers"):
        (poison / name).mkdir()
        (poison / name / "__init__.py").write_text(f"raise ImportError('{name} was imported')\n")
    return {**os.environ, "PYTHONPATH": str(poison)}


def test_checks_that_need_no_model_answer_before_torch_is_imported(no_torch_env, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    cases = [
        (["gptq", "--bits", "3", tiny_model_dir, out], "invalid choice: 3"),
        (["awq", "--bits", "4", "--group-size", "16", tiny_model_dir, out], "invalid choice: 16"),
        (["gptq", "--bits", "4", "--num-samples", "0", tiny_model_dir, out], "num_samples must be at least 1"),
        (["gptq", "--bits", "4", tmp_path / "missing", out], "model directory not found"),
        (["gptq", "--bits", "4", "--calib", tmp_path / "none.jsonl", tiny_model_dir, out], "calibration file not found"),
        (["gptq", "--bits", "4", "--resume", tiny_model_dir, out], "nothing to resume"),
        (["gptq", "--bits", "4", tiny_model_dir, tiny_model_dir / "q"], "overlaps the input model"),
    ]
    for args, expected in cases:
        one_line_error(cli(*args, env=no_torch_env), expected)
    assert not out.exists()


def test_help_shows_each_default_once_and_only_where_it_means_something():
    texts = {}
    parser = build_parser()
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        texts[name] = " ".join(sub.format_help().split())
    assert "AWQ" in parser.description
    for name, text in texts.items():
        assert "(default: None)" not in text, name
        assert "(default: False)" not in text and "(default: True)" not in text, name
    gptq = texts["gptq"]
    assert "--bits {4,8} weight bits" in gptq  # required: no default shown
    assert "(the default; vLLM serves only this)" in gptq
    assert "--group-size {-1,32,64,128} input channels sharing a scale/zero; -1 = one group per output channel " \
           "(default: 128)" in gptq
    assert gptq.count("default: true-sequential") == 1
    assert texts["awq"].count("the default; --no-zero-point") == 1
    assert "--group-size 32 or 64" in texts["demo-model"] and "--overwrite" in texts["demo-model"]
    assert "(default: 200)" in texts["bench"] and "(default: ours)" in texts["bench"]


def test_asking_for_more_samples_than_the_data_has_says_so():
    summary = CalibrationSummary(requested=128, available=60)
    for _ in range(60):
        summary.add("builtin", (10, 0, 0), False, False)
    assert "asked for 128 samples; the calibration data has 60 records" in summary.describe()
    summary.requested = 60
    assert "asked for" not in summary.describe()


def test_awq_summary_table_has_no_empty_columns_and_names_the_skipped_pair(tiny_model_dir, calib_file, tmp_path,
                                                                          capsys):
    out = tmp_path / "awq"
    assert main(["awq", "--bits", "4", "--group-size", "32", "--calib", str(calib_file), "--quiet",
                 str(tiny_model_dir), str(out)]) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("layer"))
    assert header.split() == ["layer", "linear", "shape", "rel.", "error", "clipped", "scaled", "by"]
    assert re.search(r"self_attn\.q_proj .* - +input_layernorm r=\d\.\d\d (duo|plain)", printed)
    assert "note: self_attn.o_proj gets no AWQ scales: self_attn.v_proj -> self_attn.o_proj smoothing skipped" in printed


# -- running from the repository root -------------------------------------------------------

SHADOW_CHECK = ("import transformers.activations, kernels, qwen2vl_quant.kernels.dispatch as ours; "
                "import qwen2vl_quant.cli; "
                "print(getattr(kernels, '__file__', None)); print(ours.__file__)")


def test_our_kernels_folder_does_not_shadow_the_pypi_package():
    """From the repository root (where `python -m` and a prompt put it on sys.path), with the
    PyPI `kernels` package installed, as transformers 5.25 requires."""
    pypi = subprocess.run([sys.executable, "-c", "import importlib.metadata as m; print(m.version('kernels'))"],
                          capture_output=True, text=True, cwd="/")
    assert pypi.returncode == 0, "the PyPI package `kernels` must be installed for this test to mean something"
    result = subprocess.run([sys.executable, "-c", SHADOW_CHECK], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    theirs, ours = result.stdout.split()
    assert "site-packages" in theirs and Path(ours).parent == REPO / "kernels"
    helped = subprocess.run([sys.executable, "-m", "qwen2vl_quant.cli", "bench", "--help"], capture_output=True,
                            text=True, cwd=REPO)
    assert helped.returncode == 0 and "Traceback" not in helped.stderr


def test_without_the_pypi_package_transformers_sees_none(tmp_path):
    """The same from the repository root in an environment that lacks PyPI's `kernels`: a
    site directory with every installed package but that one."""
    import site

    site_packages = Path(next(p for p in site.getsitepackages() if p.endswith("site-packages")))
    for entry in site_packages.iterdir():
        if entry.name != "kernels" and not entry.name.startswith("kernels-"):
            (tmp_path / entry.name).symlink_to(entry)
    code = (f"import site, sys; site.addsitedir({str(tmp_path)!r}); sys.path.insert(0, '');"
            "from transformers.utils.import_utils import is_kernels_available;"
            "assert not is_kernels_available(); " + SHADOW_CHECK)
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    theirs, ours = result.stdout.split()
    assert theirs == "None" and Path(ours).parent == REPO / "kernels"


# -- the README's commands ---------------------------------------------------------------------


def readme_blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_ci_runs_exactly_the_readme_commands():
    first, second = readme_blocks("bash")[:2]
    ci_lines = {line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()}
    for command in (first.strip(), second.strip()):
        assert command in ci_lines, command


def test_the_readme_python_snippet_runs_as_written(tmp_path):
    """Run as written, with its /tmp paths moved into this test's folder."""
    snippet = next(block for block in readme_blocks("python") if "quantize_checkpoint(MODEL_DIR" in block)
    moved = snippet.replace('"/tmp/', f'"{tmp_path}/')
    assert moved.count(str(tmp_path)) >= 3
    from qwen2vl_quant.api import write_demo_model

    write_demo_model(tmp_path / "qwen2vl-demo", preset="small")
    result = subprocess.run([sys.executable, "-c", moved], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rel. error" in result.stdout and (tmp_path / "qwen2vl-demo-int8-streamed" / MANIFEST).is_file()
