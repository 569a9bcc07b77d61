"""Every calibration source of issue 4 -- Qwen2-VL message files, ShareGPT (LLaMA-Factory)
records, Hugging Face datasets, image folders, in-memory records, streams -- read through the
one entry point ``build_samples`` with the tiny model's real processor."""

import base64
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from qwen2vl_quant.calibration.batches import build_samples
from qwen2vl_quant.calibration.errors import CalibrationDataError, CalibrationError
from qwen2vl_quant.calibration.hf import HFDataset
from qwen2vl_quant.calibration.image_folder import GENERIC_ANSWER, GENERIC_QUESTION, ImageFolderSource
from qwen2vl_quant.calibration.sharegpt import is_sharegpt, sharegpt_to_conversation
from qwen2vl_quant.testing.sample_data import make_test_images, unbounded
from qwen2vl_quant.testing.tiny_model import build_processor


@pytest.fixture(scope="module")
def processor():
    return build_processor("tiny")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_test_images(tmp_path_factory.mktemp("calib_images"), n=4, seed=1)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def build(data, processor, **options):
    return build_samples(data, processor, unbounded(**options))


def same_inputs(a, b):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def ask(content, answer="Fine."):
    return [{"role": "user", "content": content}, {"role": "assistant", "content": answer}]


# ----------------------------------------------------------------------------- Qwen2-VL files

def test_qwen2vl_jsonl_mixes_text_image_multi_image_and_video(tmp_path, images, processor):
    rel = [str(Path(p).relative_to(Path(p).parents[1])) for p in images]  # relative to the file's folder
    records = [
        [{"role": "system", "content": "You are a helpful assistant."}, *ask("Who are you?", "Qwen.")],
        ask([{"type": "image", "image": rel[0]}, {"type": "text", "text": "Describe this image."}]),
        ask([{"type": "image", "image": f"file://{images[1]}"}, {"type": "image", "image": rel[2]},
             {"type": "text", "text": "Compare."}]),
        ask([{"type": "video", "video": [rel[0], rel[0], rel[3], rel[3]], "fps": 2.0},
             {"type": "text", "text": "What happens?"}]),
        {"messages": ask([{"type": "image_url", "image_url": {"url": rel[1]}}, {"type": "text", "text": "OCR?"}])},
    ]
    path = write_jsonl(images[0].parents[1] / "mixed.jsonl", records)
    samples, summary = build(path, processor)
    assert [s.name for s in samples] == [f"mixed.jsonl:{i}" for i in range(1, 6)]
    assert "pixel_values" not in samples[0].inputs
    assert samples[1].inputs["image_grid_thw"].shape[0] == 1
    assert samples[2].inputs["image_grid_thw"].shape[0] == 2
    assert samples[3].inputs["video_grid_thw"][0, 0] == 2  # 4 frames merged in pairs
    assert summary.samples == 5 and summary.image_tokens > 0 and summary.video_tokens > 0
    assert summary.sources == {str(path): 5}

    as_json = tmp_path / "mixed.json"
    as_json.write_text(json.dumps([[{"role": "user", "content": [{"type": "image", "image": str(images[0])},
                                                                 {"type": "text", "text": "Describe this image."}]},
                                    {"role": "assistant", "content": "Fine."}]]))
    json_samples, _ = build(as_json, processor)
    assert json_samples[0].name == "mixed.json[0]"
    same_inputs(json_samples[0].inputs, samples[1].inputs)


def test_image_values_paths_file_urls_data_uris_bytes_and_pil(images, processor):
    path = images[0]
    data_uri = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    values = [str(path), f"file://{path}", data_uri, Image.open(path)]
    samples, _ = build([ask([{"type": "image", "image": v}, {"type": "text", "text": "Hi"}]) for v in values],
                       processor)
    for sample in samples[1:]:
        same_inputs(sample.inputs, samples[0].inputs)


def test_http_image_fails_clearly_without_network(processor):
    unreachable = "http://127.0.0.1:9/picture.png"  # nothing listens on the discard port
    with pytest.raises(CalibrationDataError, match=r"sample 0: cannot download http://127\.0\.0\.1:9/.*no network"):
        build([ask([{"type": "image", "image": unreachable}, {"type": "text", "text": "Hi"}])], processor)


# ----------------------------------------------------------------------------- ShareGPT

def test_sharegpt_messages_and_conversations_match_qwen2vl_format(tmp_path, images, processor):
    folder = images[0].parent
    llama_factory = {"messages": [{"role": "user", "content": "<image>Who is here?"},
                                  {"role": "assistant", "content": "Nobody."},
                                  {"role": "user", "content": "And here?<image><image>"},
                                  {"role": "assistant", "content": "Shapes."}],
                     "images": [images[0].name, images[1].name, images[2].name]}
    sharegpt = {"conversations": [{"from": "human", "value": "<video>What happens?"},
                                  {"from": "gpt", "value": "It moves."}],
                "system": "Be brief.",
                "videos": [[images[0].name, images[0].name]]}
    path = write_jsonl(folder / "sharegpt.jsonl", [llama_factory, sharegpt])
    samples, summary = build(path, processor)
    assert summary.image_tokens > 0 and summary.video_tokens > 0

    p = [str(i) for i in images]
    qwen = [
        [{"role": "user", "content": [{"type": "image", "image": p[0]}, {"type": "text", "text": "Who is here?"}]},
         {"role": "assistant", "content": "Nobody."},
         {"role": "user", "content": [{"type": "text", "text": "And here?"}, {"type": "image", "image": p[1]},
                                      {"type": "image", "image": p[2]}]},
         {"role": "assistant", "content": "Shapes."}],
        [{"role": "system", "content": "Be brief."},
         {"role": "user", "content": [{"type": "video", "video": [p[0], p[0]]},
                                      {"type": "text", "text": "What happens?"}]},
         {"role": "assistant", "content": "It moves."}],
    ]
    expected, _ = build(qwen, processor)
    for got, want in zip(samples, expected):
        same_inputs(got.inputs, want.inputs)


def test_sharegpt_detection_and_errors():
    assert is_sharegpt({"conversations": []})
    assert is_sharegpt({"messages": [{"role": "user", "content": "<image>x"}], "images": ["a.png"]})
    assert not is_sharegpt({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]})
    with pytest.raises(CalibrationDataError, match="1 <image> placeholders but 2 entries in 'images'"):
        sharegpt_to_conversation({"messages": [{"role": "user", "content": "<image>x"}], "images": ["a", "b"]})
    with pytest.raises(CalibrationDataError, match="unsupported role 'function_call'"):
        sharegpt_to_conversation({"conversations": [{"from": "function_call", "value": "{}"}]})
    with pytest.raises(CalibrationDataError, match="<audio> is not supported"):
        sharegpt_to_conversation({"messages": [{"role": "user", "content": "<audio>x"}], "audios": ["a.wav"]})


def test_sharegpt_error_names_file_and_line(tmp_path, processor):
    path = write_jsonl(tmp_path / "bad.jsonl", [ask("Hi"), {"messages": [{"role": "user", "content": "<image>"}]}])
    with pytest.raises(CalibrationDataError, match=r"^bad\.jsonl:2: message 0: more <image> placeholders"):
        build(path, processor)


# ----------------------------------------------------------------------------- Hugging Face datasets

@pytest.fixture(scope="module")
def saved_dataset(tmp_path_factory, images):
    import datasets
    folder = tmp_path_factory.mktemp("hf") / "vqa"
    data = datasets.Dataset.from_dict({
        "img": [str(p) for p in images],
        "q": [f"What is shown in picture {i}?" for i in range(len(images))],
        "a": [["A shape.", "Shapes."]] * len(images),  # VQA style: several answers, the first is used
    }).cast_column("img", datasets.Image())
    data.save_to_disk(str(folder))
    return folder


def test_saved_dataset_with_column_mapping(saved_dataset, images, processor):
    spec = f"hf:{saved_dataset}?image=img&question=q&answer=a"
    samples, summary = build(spec, processor, num_samples=2)
    assert len(samples) == 2 and summary.image_tokens > 0
    assert samples[0].name.startswith(f"hf:{saved_dataset}[")
    by_dataclass, _ = build(HFDataset(str(saved_dataset), image="img", question="q", answer="a"), processor,
                            num_samples=2)
    for a, b in zip(samples, by_dataclass):
        same_inputs(a.inputs, b.inputs)
    # The row as a hand-written conversation gives the same tokens and pixels.
    index = int(samples[0].name.rsplit("[", 1)[1].rstrip("]"))
    hand = ask([{"type": "image", "image": str(images[index])},
                {"type": "text", "text": f"What is shown in picture {index}?"}], "A shape.")
    same_inputs(build([hand], processor)[0][0].inputs, samples[0].inputs)


def test_dataset_folder_is_detected_and_dataset_objects_are_accepted(saved_dataset, processor):
    import datasets
    samples, summary = build(saved_dataset, processor)  # "img" is guessed; q/a are not: generic question
    assert len(samples) == 4 and summary.sources == {f"hf:{saved_dataset}": 4}
    data = datasets.load_from_disk(str(saved_dataset)).rename_columns({"img": "image", "q": "question", "a": "answer"})
    renamed, _ = build(data, processor)
    with_mapping, _ = build(f"hf:{saved_dataset}?image=img&question=q&answer=a", processor)
    for a, b in zip(renamed, with_mapping):
        same_inputs(a.inputs, b.inputs)
    with pytest.raises(CalibrationDataError, match="cannot tell which columns.*columns: x, y"):
        build(datasets.Dataset.from_dict({"x": [1], "y": [2]}), processor)


def test_dataset_with_a_messages_column(tmp_path, images, processor):
    import datasets
    data = datasets.Dataset.from_dict({
        "messages": [[{"role": "user", "content": "<image>Describe."}, {"role": "assistant", "content": "Shapes."}]],
        "images": [[str(images[0])]],
    }).cast_column("images", datasets.Sequence(datasets.Image()))
    samples, summary = build(data, processor)
    assert summary.image_tokens > 0 and samples[0].inputs["image_grid_thw"].shape[0] == 1


def test_hub_dataset_offline_fails_clearly(processor, monkeypatch):
    import datasets  # noqa: F401  (the test extra installs it)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(CalibrationDataError, match="cannot load dataset 'someone/vqa-set' from the Hub.*no network"):
        build("hf:someone/vqa-set?split=validation&image=img", processor)


def test_hf_spec_parsing():
    spec = HFDataset.parse("hf:user/set?split=test&config=en&image=img&question=q&answer=a&streaming=true")
    assert spec == HFDataset("user/set", split="test", config="en", image="img", question="q", answer="a",
                             streaming=True)
    with pytest.raises(CalibrationDataError, match="unknown key 'colum'"):
        HFDataset.parse("hf:user/set?colum=x")


def test_missing_datasets_package_names_the_extra(monkeypatch, processor):
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(CalibrationError, match=r"qwen2vl-quant\[datasets\]"):
        build("hf:user/set", processor)


# ----------------------------------------------------------------------------- image folders

def test_image_folder_with_captions(tmp_path, processor):
    folder = tmp_path / "photos"
    paths = make_test_images(folder / "sub", n=3, seed=2)
    (folder / ".hidden").mkdir()
    Image.new("RGB", (56, 56)).save(folder / ".hidden" / "skip.png")
    (folder / "metadata.jsonl").write_text(json.dumps({"file_name": "sub/image_00.png", "text": "A caption.",
                                                       "question": "What is it?"}) + "\n")
    paths[1].with_suffix(".txt").write_text("Sidecar caption.\n")
    source = ImageFolderSource(folder)
    assert len(source) == 3
    convs = [source.load(i) for i in range(3)]
    assert convs[0][0]["content"][1]["text"] == "What is it?" and convs[0][1]["content"] == "A caption."
    assert convs[1][0]["content"][1]["text"] == GENERIC_QUESTION and convs[1][1]["content"] == "Sidecar caption."
    assert convs[2][1]["content"] == GENERIC_ANSWER
    samples, summary = build(folder, processor)
    assert [s.name for s in samples] == [f"photos/sub/image_0{i}.png" for i in range(3)]
    assert summary.image_tokens > 0


def test_empty_folder_is_an_error(tmp_path, processor):
    with pytest.raises(CalibrationDataError, match="no images"):
        build(tmp_path, processor)


# ----------------------------------------------------------------------------- lists, streams, several sources

def test_several_sources_are_counted_separately(tmp_path, images, processor):
    path = write_jsonl(tmp_path / "a.jsonl", [ask("One?"), ask("Two?")])
    folder = images[0].parent
    samples, summary = build([path, folder], processor)
    assert summary.sources == {str(path): 2, str(folder): 4}
    assert "a.jsonl: 2" in summary.describe() and f"{folder}: 4" in summary.describe()


def test_generator_is_read_one_record_at_a_time(processor):
    pulled = []

    def records():
        for i in range(100):
            pulled.append(i)
            yield ask(f"Question {i}?")

    samples, summary = build(records(), processor, num_samples=3)
    assert [s.name for s in samples] == ["sample 0", "sample 1", "sample 2"]
    assert len(pulled) == 3


def test_processor_outputs_and_single_records(processor):
    batch = processor(text=["<|im_start|>user\nHi<|im_end|>\n"], return_tensors="pt")
    samples, summary = build(batch, processor)
    assert summary.sources == {"processor outputs": 1}
    assert torch.equal(samples[0].inputs["input_ids"], batch["input_ids"])
    one_conversation = ask("Hi")  # a bare list of messages is one conversation
    samples, _ = build(one_conversation, processor)
    assert len(samples) == 1
    with pytest.raises(CalibrationDataError, match="mixes paths or specs with records"):
        build(["a.jsonl", ask("Hi")], processor)
