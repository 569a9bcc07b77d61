"""Videos: files decoded with PyAV and sampled by fps / max_frames; frame lists and frame
folders without any video library; a clear error naming the extra when PyAV is missing."""

import json
import sys

import pytest

from qwen2vl_quant.calibration.batches import build_samples
from qwen2vl_quant.calibration.errors import CalibrationDataError, CalibrationError
from qwen2vl_quant.calibration.video import frame_indices, open_video
from qwen2vl_quant.testing.sample_data import make_test_images, unbounded
from qwen2vl_quant.testing.tiny_model import build_processor


@pytest.fixture(scope="module")
def processor():
    return build_processor("tiny")


@pytest.fixture(scope="module")
def video_file(tmp_path_factory):
    """A 2-second, 10 fps, 96x64 MPEG-4 clip whose red channel counts the frames."""
    import av
    import numpy as np

    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(20):
            frame = np.zeros((64, 96, 3), np.uint8)
            frame[..., 0] = i * 12
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def video_chat(video, **options):
    return [{"role": "user", "content": [{"type": "video", "video": video, **options},
                                         {"type": "text", "text": "What happens?"}]},
            {"role": "assistant", "content": "The picture gets redder."}]


def test_frame_sampling_rule():
    assert frame_indices(20, fps=2.0, max_frames=16, source_fps=10) == [0, 6, 13, 19]
    assert frame_indices(20, fps=2.0, max_frames=2, source_fps=10) == [0, 19]
    assert frame_indices(5, fps=2.0, max_frames=16, source_fps=None) == [0, 1, 3, 4]  # even count
    assert frame_indices(1, fps=2.0, max_frames=16, source_fps=None) == [0]
    assert len(frame_indices(10_000, fps=2.0, max_frames=16, source_fps=30)) == 16


def test_video_file_is_sampled_by_fps_and_max_frames(video_file, processor):
    clip = open_video(str(video_file), fps=2.0, max_frames=16)
    try:
        assert (clip.height, clip.width, clip.num_frames) == (64, 96, 4)
        frames = clip.decode(56, 84)
    finally:
        clip.close()
    assert [f.size for f in frames] == [(84, 56)] * 4
    reds = [f.getpixel((40, 28))[0] for f in frames]
    assert reds == sorted(reds) and reds[-1] - reds[0] > 150  # first to last frame, in order

    samples, summary = build_samples([video_chat(str(video_file)), video_chat(f"file://{video_file}", fps=5.0),
                                      video_chat(str(video_file))], processor, unbounded(max_frames=2))
    t = [int(s.inputs["video_grid_thw"][0, 0]) for s in samples]
    assert t == [1, 1, 1]  # max_frames=2 wins over any fps: 2 frames = one temporal patch
    samples, _ = build_samples([video_chat(str(video_file), fps=5.0)], processor, unbounded())
    assert int(samples[0].inputs["video_grid_thw"][0, 0]) == 5  # 10 frames at 5 fps
    assert summary.video_tokens > 0


def test_video_file_in_sharegpt_record(video_file, tmp_path, processor):
    record = {"messages": [{"role": "user", "content": "<video>What happens?"},
                           {"role": "assistant", "content": "It gets redder."}],
              "videos": [str(video_file)]}
    path = tmp_path / "video.jsonl"
    path.write_text(json.dumps(record) + "\n")
    samples, summary = build_samples(path, processor, unbounded())
    assert summary.video_tokens > 0 and samples[0].inputs["video_grid_thw"].shape[0] == 1


def test_corrupt_video_names_the_sample(tmp_path, processor):
    import av  # noqa: F401  (the test extra installs it)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(CalibrationDataError, match=r"sample 0: cannot read video .*broken\.mp4"):
        build_samples([video_chat(str(broken))], processor, unbounded())


def test_frame_lists_and_folders_need_no_video_library(tmp_path, processor, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)
    folder = tmp_path / "frames"
    frames = make_test_images(folder, n=6, seed=3)
    same_size = [str(f) for f in frames if f.name in ("image_00.png", "image_03.png")] * 2
    chats = [video_chat(same_size), video_chat(str(folder), fps=2.0), video_chat(str(folder), fps=4.0)]
    samples, _ = build_samples(chats, processor, unbounded())
    # 4 listed frames; 6 frames taken at 2 fps, all kept; at 4 fps, 3 frames at 2 fps -> an even 2
    assert [int(s.inputs["video_grid_thw"][0, 0]) for s in samples] == [2, 3, 1]
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not decoded: PyAV is missing")
    # A missing package is never a skippable bad sample: it would silently drop every video.
    with pytest.raises(CalibrationError, match=r"needs PyAV \(pip install 'qwen2vl-quant\[video\]'\)"):
        build_samples([video_chat(str(clip))], processor, unbounded(skip_bad_samples=True))
