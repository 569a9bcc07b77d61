"""A run killed with SIGKILL mid-layer and resumed writes the same bytes as one that was not;
two runs with the same inputs write bit-identical checkpoints. For GPTQ and for AWQ."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest


def shard_digests(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob("*.safetensors"))}


GPTQ = ["gptq", "--bits", "4", "--group-size", "64", "--desc-act"]
AWQ = ["awq", "--bits", "4", "--group-size", "64"]
# case -> (model family, command). On Qwen3-VL a run killed after layer 1 must add the
# DeepStack features after layer 2 from the reloaded resume state.
CASES = {"gptq": ("qwen2_vl", GPTQ), "awq": ("qwen2_vl", AWQ), "gptq-qwen3_vl": ("qwen3_vl", GPTQ)}


@pytest.fixture(scope="module", params=list(CASES))
def method(request):
    return request.param


@pytest.fixture(scope="module")
def model_dir(method, family_model_dir):
    return family_model_dir(CASES[method][0])


def quantize_command(method, model_dir, out, calib, *extra):
    return [sys.executable, "-m", "qwen2vl_quant.cli", *CASES[method][1], "--calib", str(calib), "--device", "cpu",
            "--max-shard-size", "300KB", "--quiet", *extra, str(model_dir), str(out)]


@pytest.fixture(scope="module")
def calib(tmp_path_factory, calib_conversations):
    path = tmp_path_factory.mktemp("calib") / "calib.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in calib_conversations))
    return path


@pytest.fixture(scope="module")
def uninterrupted(method, model_dir, calib, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "straight"
    subprocess.run(quantize_command(method, model_dir, out, calib), check=True, capture_output=True)
    return out


def test_same_inputs_give_bit_identical_checkpoints(method, model_dir, calib, uninterrupted, tmp_path):
    again = tmp_path / "again"
    subprocess.run(quantize_command(method, model_dir, again, calib), check=True, capture_output=True)
    assert shard_digests(again) == shard_digests(uninterrupted)
    assert len(shard_digests(again)) > 1


def test_killed_run_resumes_to_the_same_bytes(method, model_dir, calib, uninterrupted, tmp_path):
    out = tmp_path / "killed"
    staging = tmp_path / ".killed.partial"
    process = subprocess.Popen(quantize_command(method, model_dir, out, calib), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    state = staging / "state.json"
    deadline = time.monotonic() + 300
    finished = 0
    while time.monotonic() < deadline and process.poll() is None:
        try:
            finished = json.loads(state.read_text())["finished_layers"]
        except (OSError, ValueError, KeyError):
            finished = 0
        if finished >= 1:
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not out.exists(), "a killed run must not leave a complete-looking output"
    assert 1 <= finished <= 2  # resumed where the DeepStack features are still added (after layers 1, 2)

    resumed = subprocess.run(quantize_command(method, model_dir, out, calib, "--resume"), capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert shard_digests(out) == shard_digests(uninterrupted)
    assert not staging.exists()


def test_resume_with_other_options_is_refused(small_model_dir, calib, tmp_path):
    method = "gptq"
    out = tmp_path / "o"
    staging = tmp_path / ".o.partial"
    staging.mkdir()
    (staging / "state.json").write_text(json.dumps({"fingerprint": "something else", "finished_layers": 2}))
    result = subprocess.run(quantize_command(method, small_model_dir, out, calib, "--resume"), capture_output=True,
                            text=True)
    assert result.returncode == 2
    assert "other inputs or options" in result.stderr
    assert (staging / "state.json").exists(), "the partial run must be kept for the user to decide"
