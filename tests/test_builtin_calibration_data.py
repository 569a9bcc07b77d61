"""The built-in offline calibration set (calibration/builtin) is well-formed and complete.

It ships as package data and is what the CLI calibrates on when no --calib is given, so
every line must be a valid Qwen2-VL conversation whose media exist and open.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections import Counter
from pathlib import Path, PurePosixPath

import pytest
from PIL import Image

BUILTIN = Path(__file__).resolve().parents[1] / "calibration" / "builtin"
JSONL = BUILTIN / "builtin.jsonl"
MANIFEST = BUILTIN / "builtin_manifest.json"
SIZE_BUDGET = 3 * 1024 * 1024
ROLES = {"system", "user", "assistant"}
# category -> fewest samples the set must keep (the issue asks for about these numbers)
MIN_COUNTS = {"document": 8, "chart": 6, "ui": 6, "scene": 6, "video": 3, "multi_image": 3, "text": 8}
SCRIPTS = {"Latn", "Cyrl", "Grek", "Arab", "Deva"}


def load_conversations() -> list[list[dict]]:
    lines = JSONL.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def load_manifest() -> dict:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def media_parts(conv: list[dict]) -> list[dict]:
    return [p for m in conv if isinstance(m["content"], list) for p in m["content"] if p["type"] != "text"]


def media_files(conv: list[dict]) -> list[str]:
    files = []
    for p in media_parts(conv):
        files += [p["image"]] if p["type"] == "image" else p["video"]
    return files


def check_relative(path: str) -> None:
    assert isinstance(path, str) and path, path
    assert "\\" not in path and "://" not in path, f"{path!r}: use a plain relative POSIX path"
    pp = PurePosixPath(path)
    assert not pp.is_absolute() and ".." not in pp.parts, f"{path!r} must stay inside the builtin folder"


def check_part(part: dict) -> None:
    kind = part.get("type")
    if kind == "text":
        assert set(part) == {"type", "text"} and isinstance(part["text"], str) and part["text"].strip()
    elif kind == "image":
        assert set(part) == {"type", "image"}
        check_relative(part["image"])
        assert re.fullmatch(r"images/[\w.-]+\.(png|jpg)", part["image"]), part["image"]
    elif kind == "video":
        assert set(part) == {"type", "video", "fps"}
        assert isinstance(part["fps"], (int, float)) and part["fps"] > 0
        frames = part["video"]
        assert isinstance(frames, list) and len(frames) >= 4, "a video needs at least 4 frames"
        # Qwen2-VL merges frames in pairs (temporal_patch_size 2): an even count wastes nothing
        assert len(frames) % 2 == 0, frames
        folders = {PurePosixPath(f).parent for f in frames}
        assert len(folders) == 1, f"frames of one video must share a folder: {folders}"
        for i, f in enumerate(frames):
            check_relative(f)
            assert re.fullmatch(rf"videos/[\w-]+/frame_{i:02d}\.jpg", f), f
    else:
        raise AssertionError(f"unknown content part {part!r}")


def test_every_line_is_a_qwen2vl_conversation():
    raw = JSONL.read_text(encoding="utf-8")
    assert raw.endswith("\n") and "\r" not in raw
    convs = load_conversations()
    assert convs
    for n, conv in enumerate(convs, 1):
        assert isinstance(conv, list) and conv, f"line {n}"
        roles = [m["role"] for m in conv]
        assert set(roles) <= ROLES, f"line {n}: {roles}"
        body = roles[1:] if roles[0] == "system" else roles
        assert "system" not in body, f"line {n}: system only as the first message"
        assert body and body[0] == "user" and body[-1] == "assistant", f"line {n}: {roles}"
        assert all(a != b for a, b in zip(body, body[1:])), f"line {n}: user/assistant must alternate: {roles}"
        for m in conv:
            assert set(m) == {"role", "content"}, f"line {n}: {set(m)}"
            content = m["content"]
            if isinstance(content, str):
                assert content.strip(), f"line {n}: empty {m['role']} message"
                continue
            assert m["role"] == "user", f"line {n}: only user turns carry content parts"
            assert isinstance(content, list) and content, f"line {n}"
            for part in content:
                check_part(part)
            assert any(p["type"] == "text" and p["text"].strip() for p in content), f"line {n}: no question"


def test_referenced_media_exist_and_open():
    for n, conv in enumerate(load_conversations(), 1):
        for part in media_parts(conv):
            files = [part["image"]] if part["type"] == "image" else part["video"]
            sizes = set()
            for rel in files:
                path = BUILTIN / rel
                assert path.is_file(), f"line {n}: {rel} missing"
                with Image.open(path) as im:
                    im.verify()
                with Image.open(path) as im:
                    assert im.format == ("PNG" if rel.endswith(".png") else "JPEG"), rel
                    rgb = im.convert("RGB")
                    rgb.load()
                    sizes.add(rgb.size)
                    # realistic sizes: long side between ~224 and 640 pixels
                    assert 224 <= max(rgb.size) <= 640 and min(rgb.size) >= 112, (rel, rgb.size)
                    assert rgb.getextrema() != ((0, 0),) * 3, f"{rel} is blank"
            if part["type"] == "video":
                assert len(sizes) == 1, f"line {n}: frames of one video differ in size: {sizes}"


def test_no_unreferenced_media_files():
    referenced = {f for conv in load_conversations() for f in media_files(conv)}
    on_disk = {p.relative_to(BUILTIN).as_posix() for sub in ("images", "videos")
               for p in (BUILTIN / sub).rglob("*") if p.is_file()}
    assert on_disk == referenced, {"unreferenced": sorted(on_disk - referenced),
                                   "missing": sorted(referenced - on_disk)}


def test_categories_and_coverage():
    manifest = load_manifest()
    convs = load_conversations()
    counts = Counter(s["category"] for s in manifest["samples"])
    assert set(counts) == set(MIN_COUNTS), counts
    for cat, least in MIN_COUNTS.items():
        assert counts[cat] >= least, f"{cat}: {counts[cat]} < {least}"
    assert 48 <= len(convs) <= 64
    for entry, conv in zip(manifest["samples"], convs):
        kinds = Counter(p["type"] for p in media_parts(conv))
        cat = entry["category"]
        if cat == "text":
            assert not kinds, entry["id"]
        elif cat == "video":
            assert kinds["video"] >= 1, entry["id"]
        elif cat == "multi_image":
            assert kinds["image"] >= 2, entry["id"]
        else:
            assert kinds["image"] == 1 and not kinds["video"], entry["id"]
    scripts = {s for e in manifest["samples"] for s in e["scripts"]}
    assert SCRIPTS <= scripts and scripts & {"Hans", "Jpan", "Kore"}, scripts
    picture_scripts = {s for e in manifest["samples"] if e["category"] == "document" for s in e["scripts"]}
    assert SCRIPTS <= picture_scripts, "documents must show every script, not only the text chats"
    assert sum(e["user_turns"] > 1 for e in manifest["samples"]) >= 10, "too few multi-turn samples"


def test_total_size_within_budget():
    total = sum(p.stat().st_size for p in BUILTIN.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert total <= SIZE_BUDGET, f"{total} bytes > {SIZE_BUDGET}"


def test_manifest_matches_jsonl():
    manifest = load_manifest()
    convs = load_conversations()
    samples = manifest["samples"]
    assert manifest["num_samples"] == len(samples) == len(convs)
    assert manifest["counts"] == dict(Counter(s["category"] for s in samples))
    ids = [s["id"] for s in samples]
    assert len(set(ids)) == len(ids)
    media_bytes = 0
    for entry, conv in zip(samples, convs):
        assert entry["user_turns"] == sum(m["role"] == "user" for m in conv), entry["id"]
        parts = media_parts(conv)
        images = [p["image"] for p in parts if p["type"] == "image"]
        videos = [p["video"] for p in parts if p["type"] == "video"]
        assert [i["path"] for i in entry["images"]] == images, entry["id"]
        assert [v["path"] for v in entry["videos"]] == [str(PurePosixPath(v[0]).parent) for v in videos]
        for meta in entry["images"]:
            path = BUILTIN / meta["path"]
            with Image.open(path) as im:
                assert (meta["width"], meta["height"], meta["format"]) == (im.width, im.height, im.format)
            assert meta["bytes"] == path.stat().st_size
            media_bytes += meta["bytes"]
        for meta, frames in zip(entry["videos"], videos):
            assert meta["frames"] == len(frames)
            with Image.open(BUILTIN / frames[0]) as im:
                assert (meta["width"], meta["height"]) == im.size
            assert meta["bytes"] == sum((BUILTIN / f).stat().st_size for f in frames)
            media_bytes += meta["bytes"]
    assert manifest["media_bytes"] == media_bytes


def _load_generator():
    spec = importlib.util.spec_from_file_location("_make_builtin", BUILTIN / "make_builtin.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_generator_reproduces_committed_set(tmp_path):
    """Regenerating gives the same conversations and pictures of the same sizes.

    Byte equality of the pictures also needs the same Pillow build and font files, so
    it is not asserted here; the generator's own determinism was checked when it was
    written (two runs, identical hashes).
    """
    gen = _load_generator()
    try:
        gen.font_source("sans"), gen.font_source("cjk_sc"), gen.font_source("arabic"), gen.font_source("deva")
    except gen.FontError as e:
        pytest.skip(f"fonts for regeneration are not installed: {e}")
    gen.build(tmp_path, load_manifest()["seed"])
    assert (tmp_path / "builtin.jsonl").read_text(encoding="utf-8") == JSONL.read_text(encoding="utf-8"), \
        "builtin.jsonl is stale: run python calibration/builtin/make_builtin.py"
    new = json.loads((tmp_path / "builtin_manifest.json").read_text(encoding="utf-8"))
    old = load_manifest()
    strip = lambda m: [(s["id"], [(i["path"], i["width"], i["height"]) for i in s["images"]],  # noqa: E731
                        [(v["path"], v["frames"], v["width"], v["height"]) for v in s["videos"]])
                       for s in m["samples"]]
    assert strip(new) == strip(old)
