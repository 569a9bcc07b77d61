#!/usr/bin/env python3
"""Generate the built-in offline calibration set of qwen2vl-quant.

    python calibration/builtin/make_builtin.py [--seed 1234] [--out DIR]

Writes, next to this script (or under --out):

    builtin.jsonl            one conversation per line, Qwen2-VL message format;
                             media paths are relative to this file
    builtin_manifest.json    per-sample metadata (id, category, languages, scripts,
                             media sizes), line i of the jsonl <-> samples[i]
    images/*.png|jpg         single pictures (documents, charts, UI, scenes, ...)
    videos/<name>/frame_XX.jpg   short videos as frame lists

Everything is drawn procedurally (no downloads, no third-party pictures), so the set
can be regenerated and extended. Output is deterministic for a given seed and
environment: every random stream is seeded from (seed, sample name), and no encoder
writes timestamps (PIL's JPEG and PNG writers add none unless asked). Byte-identical
output across machines additionally needs the same Pillow build and font files.

Why these categories: a calibration set should make each decoder layer see the kind
of activations it sees in use. For a vision-language model that is image tokens of
documents (several scripts), charts, screenshots and natural scenes, video tokens,
several images in one turn, and plain multilingual text chat; each picture comes with
a question whose answer is really in the picture, so the answer tokens attend to it.

Only regenerating needs fonts; the committed images are what ships. Debian packages:

    apt-get install fonts-noto-core fonts-noto-mono fonts-noto-cjk fonts-dejavu-core libraqm0

fonts-noto-core brings Noto Sans/Serif (Latin, Greek, Cyrillic), Noto Naskh Arabic and
Noto Sans Devanagari; fonts-noto-mono the receipt and code font; fonts-noto-cjk
Chinese, Japanese and Korean; fonts-dejavu-core symbols (stars, arrows, check marks)
and the fallback for the Latin fonts. Fonts are looked up by path, then by file name
under /usr/share/fonts; a missing font, or a character a font cannot draw, stops the
script with a message (Pillow has no font fallback and would draw boxes). Arabic and
Devanagari need complex text layout: Pillow uses libraqm when
``PIL.features.check("raqm")`` is true (the PyPI wheels bundle it; otherwise install
libraqm0). Without raqm the script still runs but warns: Arabic is then drawn
unshaped and left to right, and Devanagari without conjuncts.

Generation takes about 10 s on 2 CPU cores and writes about 1.5 MB.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import sys
import time
import unicodedata
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, features

DEFAULT_SEED = 1234
SIZE_BUDGET = 3 * 1024 * 1024
JPEG_QUALITY = 80
FPS = 2.0

# --------------------------------------------------------------------------- fonts

_NOTO = "/usr/share/fonts/truetype/noto/"
_NOTO_OT = "/usr/share/fonts/opentype/noto/"
_DEJAVU = "/usr/share/fonts/truetype/dejavu/"
_CJK_INDEX = {"cjk_jp": 0, "cjk_kr": 1, "cjk_sc": 2, "cjk_tc": 3}

# role -> candidate files, best first; "(file, index)" for font collections.
FONT_CANDIDATES: dict[str, list] = {
    "sans": [_NOTO + "NotoSans-Regular.ttf", _DEJAVU + "DejaVuSans.ttf"],
    "sans_bold": [_NOTO + "NotoSans-Bold.ttf", _DEJAVU + "DejaVuSans-Bold.ttf"],
    "serif": [_NOTO + "NotoSerif-Regular.ttf", _DEJAVU + "DejaVuSerif.ttf"],
    "serif_bold": [_NOTO + "NotoSerif-Bold.ttf", _DEJAVU + "DejaVuSerif-Bold.ttf"],
    "mono": [_NOTO + "NotoSansMono-Regular.ttf", _DEJAVU + "DejaVuSansMono.ttf"],
    "mono_bold": [_NOTO + "NotoSansMono-Bold.ttf", _DEJAVU + "DejaVuSansMono-Bold.ttf"],
    "symbol": [_DEJAVU + "DejaVuSans.ttf"],
    "symbol_bold": [_DEJAVU + "DejaVuSans-Bold.ttf"],
    "arabic": [_NOTO + "NotoNaskhArabic-Regular.ttf", _NOTO + "NotoSansArabic-Regular.ttf"],
    "arabic_bold": [_NOTO + "NotoNaskhArabic-Bold.ttf", _NOTO + "NotoSansArabic-Bold.ttf"],
    "deva": [_NOTO + "NotoSansDevanagari-Regular.ttf", _NOTO + "NotoSerifDevanagari-Regular.ttf"],
    "deva_bold": [_NOTO + "NotoSansDevanagari-Bold.ttf", _NOTO + "NotoSerifDevanagari-Bold.ttf"],
}
for _role, _idx in _CJK_INDEX.items():
    FONT_CANDIDATES[_role] = [(_NOTO_OT + "NotoSansCJK-Regular.ttc", _idx),
                              ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", _idx)]
    FONT_CANDIDATES[_role + "_bold"] = [(_NOTO_OT + "NotoSansCJK-Bold.ttc", _idx),
                                        (_NOTO_OT + "NotoSansCJK-Regular.ttc", _idx)]

_PACKAGES = "fonts-noto-core fonts-noto-mono fonts-noto-cjk fonts-dejavu-core"


# Pillow has no font fallback; these roles borrow characters they lack from another role.
FONT_FALLBACK = {"deva": "sans", "deva_bold": "sans_bold", "sans": "symbol", "sans_bold": "symbol_bold"}


class FontError(RuntimeError):
    """A font needed to regenerate the set is missing."""


@functools.cache
def _find_file(name: str) -> str | None:
    """Find a font file by base name anywhere under the usual font folders."""
    for root in ("/usr/share/fonts", "/usr/local/share/fonts", os.path.expanduser("~/.fonts")):
        for dirpath, _dirs, files in os.walk(root):
            if name in files:
                return os.path.join(dirpath, name)
    return None


@functools.cache
def font_source(role: str) -> tuple[str, int]:
    for cand in FONT_CANDIDATES[role]:
        path, index = cand if isinstance(cand, tuple) else (cand, 0)
        if not os.path.exists(path):
            path = _find_file(os.path.basename(path))
        if path:
            return path, index
    names = ", ".join(os.path.basename(c[0] if isinstance(c, tuple) else c)
                      for c in FONT_CANDIDATES[role])
    raise FontError(f"no font for role {role!r} (looked for {names}). "
                    f"Install them with: apt-get install {_PACKAGES}")


@functools.cache
def get_font(role: str, size: int) -> ImageFont.FreeTypeFont:
    path, index = font_source(role)
    return ImageFont.truetype(path, size, index=index)


RAQM = features.check("raqm")


def _render(role: str, ch: str) -> bytes:
    f = get_font(role, 24)
    im = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(im).text((8, 8), ch, font=f, fill=255)
    return im.tobytes()


@functools.cache
def _has_glyph(role: str, ch: str) -> bool:
    # U+10FFFD is unassigned, so it renders as the font's .notdef box; a character that
    # renders identically is missing too.
    return ch.isspace() or unicodedata.combining(ch) > 0 or _render(role, ch) != _render(role, "\U0010FFFD")


def font_runs(role: str, text: str) -> list[tuple[str, str]]:
    """Split text into (role, run) pieces using FONT_FALLBACK for characters `role` lacks."""
    fb = FONT_FALLBACK.get(role)
    if fb is None:
        return [(role, text)]
    runs: list[tuple[str, str]] = []
    for ch in text:
        r = role if (_has_glyph(role, ch) or ch.isspace()) else fb
        if ch.isspace() and runs:
            r = runs[-1][0]
        if runs and runs[-1][0] == r:
            runs[-1] = (r, runs[-1][1] + ch)
        else:
            runs.append((r, ch))
    return runs


def check_glyphs(role: str, text: str) -> None:
    """Pillow has no font fallback: a character the font lacks is drawn as a box. Refuse it."""
    missing = sorted({ch for ch in text if not _has_glyph(role, ch)})
    if missing:
        path = font_source(role)[0]
        raise FontError(f"font {os.path.basename(path)} (role {role!r}) has no glyph for "
                        f"{missing!r} in {text!r}; use another role or other characters")

# ------------------------------------------------------------------ random streams


def rng_for(seed: int, name: str) -> np.random.Generator:
    """Independent stream per sample, so adding a sample does not change the others."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


# ------------------------------------------------------------------------ drawing


def _scale(v, s):
    if isinstance(v, (list, tuple)):
        return type(v)(_scale(x, s) for x in v)
    return v * s


class Canvas:
    """A picture drawn at `ss` times its size and downsampled: anti-aliased shapes."""

    def __init__(self, w: int, h: int, bg=(255, 255, 255), ss: int = 2):
        self.w, self.h, self.ss = w, h, ss
        if isinstance(bg, np.ndarray):  # float array [H*ss, W*ss, 3] in 0..255
            self.img = to_image(bg)
            if self.img.size != (w * ss, h * ss):
                self.img = self.img.resize((w * ss, h * ss), Image.BICUBIC)
        elif isinstance(bg, Image.Image):
            self.img = bg.convert("RGB").resize((w * ss, h * ss), Image.BICUBIC)
        else:
            self.img = Image.new("RGB", (w * ss, h * ss), bg)
        self.d = ImageDraw.Draw(self.img, "RGBA")

    def s(self, v):
        return _scale(v, self.ss)

    def rect(self, box, fill=None, outline=None, width=1, radius=0):
        box = self.s(tuple(box))
        if radius:
            self.d.rounded_rectangle(box, radius * self.ss, fill=fill, outline=outline,
                                     width=max(1, round(width * self.ss)))
        else:
            self.d.rectangle(box, fill=fill, outline=outline, width=max(1, round(width * self.ss)))

    def ellipse(self, box, fill=None, outline=None, width=1):
        self.d.ellipse(self.s(tuple(box)), fill=fill, outline=outline,
                       width=max(1, round(width * self.ss)))

    def line(self, pts, fill, width=1.0):
        self.d.line([self.s(tuple(p)) for p in pts], fill=fill, width=max(1, round(width * self.ss)),
                    joint="curve")

    def polygon(self, pts, fill=None, outline=None):
        self.d.polygon([self.s(tuple(p)) for p in pts], fill=fill, outline=outline)

    def pieslice(self, box, start, end, fill, outline=None, width=1):
        self.d.pieslice(self.s(tuple(box)), start, end, fill=fill, outline=outline,
                        width=max(1, round(width * self.ss)))

    def arc(self, box, start, end, fill, width=1):
        self.d.arc(self.s(tuple(box)), start, end, fill=fill, width=max(1, round(width * self.ss)))

    def text(self, xy, s, size, role="sans", fill=(0, 0, 0), anchor="la", rtl=False):
        kw = {"direction": "rtl"} if (rtl and RAQM) else {}
        font = get_font(role, round(size * self.ss))
        runs = font_runs(role, s) if not rtl else [(role, s)]
        if len(runs) == 1:
            check_glyphs(runs[0][0], s)
            self.d.text(self.s(tuple(xy)), s, font=font, fill=fill, anchor=anchor, **kw)
            return
        # Mixed scripts (e.g. Devanagari with Latin): draw run by run on a common baseline.
        x, y = self.s(tuple(xy))
        widths = [get_font(r, round(size * self.ss)).getlength(t) for r, t in runs]
        x -= {"l": 0, "m": sum(widths) / 2, "r": sum(widths)}[anchor[0]]
        y += font.getbbox("Hx", anchor="l" + anchor[1])[1] - font.getbbox("Hx", anchor="ls")[1]
        for (r, t), wdt in zip(runs, widths):
            check_glyphs(r, t)
            self.d.text((x, y), t, font=get_font(r, round(size * self.ss)), fill=fill, anchor="ls")
            x += wdt

    def textlen(self, s, size, role="sans", rtl=False) -> float:
        kw = {"direction": "rtl"} if (rtl and RAQM) else {}
        runs = font_runs(role, s) if not rtl else [(role, s)]
        return sum(get_font(r, round(size * self.ss)).getlength(t, **kw) for r, t in runs) / self.ss

    def paste(self, im: Image.Image, xy, mask: Image.Image | None = None):
        im2 = im.resize((im.width * self.ss, im.height * self.ss), Image.BICUBIC)
        m2 = mask.resize(im2.size, Image.BICUBIC) if mask is not None else None
        self.img.paste(im2, self.s(tuple(xy)), m2)

    def array(self) -> np.ndarray:
        return np.asarray(self.img, dtype=np.float32)

    def set_array(self, a: np.ndarray):
        self.img = to_image(a)
        self.d = ImageDraw.Draw(self.img, "RGBA")

    def sphere(self, cx, cy, r, color, light=(-0.45, -0.6), spec=0.6, shininess=25):
        """Phong-shaded ball composited with an anti-aliased edge."""
        s = self.ss
        cx, cy, r = cx * s, cy * s, r * s
        x0, y0 = max(0, int(cx - r - 2)), max(0, int(cy - r - 2))
        x1, y1 = min(self.img.width, int(cx + r + 3)), min(self.img.height, int(cy + r + 3))
        a = np.asarray(self.img.crop((x0, y0, x1, y1)), dtype=np.float32)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        nx, ny = (xx + 0.5 - cx) / r, (yy + 0.5 - cy) / r
        rr = nx * nx + ny * ny
        nz = np.sqrt(np.clip(1 - rr, 0, 1))
        lx, ly = light
        lz = math.sqrt(max(0.0, 1 - lx * lx - ly * ly))
        diff = np.clip(nx * lx + ny * ly + nz * lz, 0, 1)
        # reflection of the light about the normal, viewer at +z
        rz = 2 * diff * nz - lz
        spc = np.clip(rz, 0, 1) ** shininess * spec
        col = np.array(color, np.float32)
        shade = col * (0.22 + 0.78 * diff[..., None]) + 255 * spc[..., None]
        cover = np.clip((1 - np.sqrt(rr)) * r + 0.5, 0, 1)[..., None]
        a = a * (1 - cover) + np.clip(shade, 0, 255) * cover
        self.img.paste(to_image(a), (x0, y0))
        self.d = ImageDraw.Draw(self.img, "RGBA")

    def shadow(self, box, alpha=0.35, blur=6, rect=False):
        """Soft shadow: elliptical (an object on a table) or rectangular (a window, a menu)."""
        m = Image.new("L", self.img.size, 0)
        shape = ImageDraw.Draw(m).rectangle if rect else ImageDraw.Draw(m).ellipse
        shape(self.s(tuple(box)), fill=int(255 * alpha))
        m = m.filter(ImageFilter.GaussianBlur(blur * self.ss))
        self.img = Image.composite(Image.new("RGB", self.img.size, (20, 15, 10)), self.img, m)
        self.d = ImageDraw.Draw(self.img, "RGBA")

    def result(self) -> Image.Image:
        return self.img.resize((self.w, self.h), Image.LANCZOS)


def to_image(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "RGB") if a.dtype != np.uint8 \
        else Image.fromarray(a, "RGB")


def wrap(text: str, size: float, role: str, maxw: float, canvas: Canvas, rtl=False) -> list[str]:
    """Greedy wrap; CJK text (no spaces) wraps between any two characters."""
    tokens = list(text) if role.startswith("cjk") else text.split(" ")
    sep = "" if role.startswith("cjk") else " "
    lines, cur = [], ""
    for tok in tokens:
        trial = tok if not cur else cur + sep + tok
        if canvas.textlen(trial, size, role, rtl) <= maxw or not cur:
            cur = trial
        else:
            lines.append(cur)
            cur = tok
    if cur:
        lines.append(cur)
    return lines


# ----------------------------------------------------------------------- textures


def noise2d(rng, h, w, scale, octaves=4, persistence=0.5, scale_x=None) -> np.ndarray:
    """Fractal value noise in [0, 1]; `scale` is the size in px of the coarsest feature."""
    scale_x = scale if scale_x is None else scale_x
    acc = np.zeros((h, w), np.float32)
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        cy, cx = max(scale / 2 ** o, 1.5), max(scale_x / 2 ** o, 1.5)
        gh, gw = int(h / cy) + 3, int(w / cx) + 3
        g = rng.random((gh, gw)).astype(np.float32)
        up = np.asarray(Image.fromarray(g).resize((int(gw * cx), int(gh * cy)), Image.BICUBIC))
        acc += amp * up[:h, :w]
        norm += amp
        amp *= persistence
    acc /= norm
    lo, hi = np.percentile(acc, 1), np.percentile(acc, 99)
    return np.clip((acc - lo) / max(hi - lo, 1e-6), 0, 1)


def noise1d(rng, n, scale, octaves=5, persistence=0.55) -> np.ndarray:
    """Fractal 1-D noise in roughly [-1, 1] (ridge lines, wave crests)."""
    x = np.arange(n, dtype=np.float32)
    acc = np.zeros(n, np.float32)
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        step = max(scale / 2 ** o, 2)
        k = int(n / step) + 3
        pts = rng.uniform(-1, 1, k)
        acc += amp * np.interp(x / step, np.arange(k), pts)
        norm += amp
        amp *= persistence
    return acc / norm


def gradient(h, w, stops, horizontal=False) -> np.ndarray:
    """Linear gradient; stops = [(pos 0..1, (r, g, b)), ...]."""
    t = np.linspace(0, 1, w if horizontal else h, dtype=np.float32)
    pos = np.array([p for p, _ in stops], np.float32)
    cols = np.array([c for _, c in stops], np.float32)
    line = np.stack([np.interp(t, pos, cols[:, k]) for k in range(3)], -1)
    return np.broadcast_to(line[None, :, :] if horizontal else line[:, None, :], (h, w, 3)).copy()


def tint(n: np.ndarray, dark, light) -> np.ndarray:
    """Map noise in [0, 1] to a colour ramp."""
    lo, hi = np.array(dark, np.float32), np.array(light, np.float32)
    return lo + (hi - lo) * n[..., None]


def wood(rng, h, w, base=(150, 100, 60), dark=(105, 65, 35), planks=0, vertical=False) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    along, across = (yy, xx) if vertical else (xx, yy)
    n = noise2d(rng, h, w, scale=max(h, w) / 3, octaves=3)
    grain = 0.5 + 0.5 * np.sin(across * 0.35 + n * 9.0 + np.sin(along * 0.01) * 2)
    fine = noise2d(rng, h, w, scale=6, octaves=2, scale_x=60) if not vertical else \
        noise2d(rng, h, w, scale=60, octaves=2, scale_x=6)
    t = np.clip(0.55 * grain + 0.45 * fine, 0, 1)
    a = tint(t, dark, base)
    if planks:
        size = (w if vertical else h) / planks
        idx = np.floor(across / size)
        a *= (0.92 + 0.16 * ((idx * 0.618) % 1))[..., None]
        seam = (across % size) < 1.5
        a[seam] *= 0.55
    return a


def paper(rng, h, w, color=(247, 244, 236), amount=10.0) -> np.ndarray:
    n = noise2d(rng, h, w, scale=max(h, w) / 2, octaves=3)
    f = noise2d(rng, h, w, scale=3, octaves=1)
    return np.array(color, np.float32) + (n[..., None] - 0.5) * amount + (f[..., None] - 0.5) * 4


def photo_finish(img: Image.Image, rng, grain=2.5, vignette=0.22, blur=0.0) -> Image.Image:
    """Camera-like finish: slight blur, vignetting and sensor noise."""
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    a = np.asarray(img, np.float32)
    h, w = a.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    a = a * (1 - vignette * np.clip(r2 / 2, 0, 1))[..., None]
    a += rng.normal(0, grain, (h, w, 1)).astype(np.float32) + rng.normal(0, grain / 3, a.shape)
    return to_image(a)


def photograph_page(page: Image.Image, rng, out_w, out_h, angle=1.5, surface="wood") -> Image.Image:
    """A page lying on a table, shot from above: rotated, shadowed, lit unevenly."""
    ss = 2
    W, H = out_w * ss, out_h * ss
    if surface == "wood":
        bg = wood(rng, H, W, base=(156, 110, 70), dark=(110, 72, 42), planks=3)
    else:
        bg = tint(noise2d(rng, H, W, scale=W / 2, octaves=4), (70, 74, 80), (110, 114, 120))
    canvas = to_image(bg)
    pg = page.resize((page.width * ss, page.height * ss), Image.BICUBIC).convert("RGBA")
    pg = pg.rotate(angle, resample=Image.BICUBIC, expand=True)
    x, y = (W - pg.width) // 2, (H - pg.height) // 2
    sh = Image.new("L", canvas.size, 0)
    sh.paste(pg.getchannel("A").point(lambda v: v * 0.5), (x + 8, y + 12))
    sh = sh.filter(ImageFilter.GaussianBlur(12))
    canvas = Image.composite(Image.new("RGB", canvas.size, (25, 18, 12)), canvas, sh)
    canvas.paste(pg, (x, y), pg)
    a = np.asarray(canvas, np.float32)
    light = gradient(H, W, [(0, (1.06,) * 3), (1, (0.9,) * 3)], horizontal=True)
    a *= light * gradient(H, W, [(0, (1.02,) * 3), (1, (0.94,) * 3)])
    img = to_image(a).resize((out_w, out_h), Image.LANCZOS)
    return photo_finish(img, rng, grain=2.0, vignette=0.18)


# --------------------------------------------------------------- sample records


@dataclass
class Sample:
    id: str
    category: str
    languages: list[str]
    scripts: list[str]
    messages: list[dict]
    notes: str = ""
    extra: dict = field(default_factory=dict)


def img_part(path: str) -> dict:
    return {"type": "image", "image": path}


def video_part(paths: list[str]) -> dict:
    return {"type": "video", "video": paths, "fps": FPS}


def text_part(s: str) -> dict:
    return {"type": "text", "text": s}


def user(*parts) -> dict:
    if len(parts) == 1 and isinstance(parts[0], str):
        return {"role": "user", "content": parts[0]}
    return {"role": "user", "content": [p if isinstance(p, dict) else text_part(p) for p in parts]}


def assistant(s: str) -> dict:
    return {"role": "assistant", "content": s}


def system(s: str = "You are a helpful assistant.") -> dict:
    return {"role": "system", "content": s}


def chat(first_user_parts: list, qa: list[tuple[str, str]], sys_prompt: str | None = None) -> list[dict]:
    """Media + first question in the first user turn, then follow-up questions as text."""
    msgs = [system(sys_prompt)] if sys_prompt else []
    (q0, a0), rest = qa[0], qa[1:]
    msgs += [user(*first_user_parts, q0), assistant(a0)]
    for q, a in rest:
        msgs += [user(q), assistant(a)]
    return msgs


class Writer:
    """Saves pictures under the output folder and returns their relative paths."""

    def __init__(self, out: Path):
        self.out = out
        self.paths: dict[str, str] = {}  # image name -> relative path, for samples that reuse images

    def save(self, img: Image.Image, rel_stem: str, kind: str) -> str:
        """kind 'photo': JPEG; 'flat' (charts, UI): the smaller of JPEG and a palette PNG.

        Flat graphics have few colours, so a 256-colour palette (max-coverage quantizer, no
        dithering: measured max error <= 8/255 here, where median cut shifted small
        coloured areas by up to 150) is visually lossless and avoids JPEG ringing. Such PNGs open in mode
        "P"; loaders convert to RGB as the Qwen2-VL processors do.
        """
        img = img.convert("RGB")
        jpg = _encode(img, "JPEG")
        data, ext = jpg, "jpg"
        if kind == "flat":
            pal = img.quantize(colors=256, method=Image.Quantize.MAXCOVERAGE, dither=Image.Dither.NONE)
            png = _encode(pal, "PNG")
            if len(png) <= len(jpg):
                data, ext = png, "png"
        rel = f"{rel_stem}.{ext}"
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return rel

    def image(self, img, name, kind="photo") -> str:
        self.paths[name] = self.save(img, f"images/{name}", kind)
        return self.paths[name]

    def video(self, frames: list[Image.Image], name) -> list[str]:
        return [self.save(f, f"videos/{name}/frame_{i:02d}", "photo") for i, f in enumerate(frames)]


def _encode(img: Image.Image, fmt: str) -> bytes:
    import io

    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True, subsampling="4:2:0")
    else:
        img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def money_en(c: int) -> str:
    return f"${c // 100:,}.{c % 100:02d}"


def money_eu(c: int, sym="€", thousands=".") -> str:
    whole = f"{c // 100:,}".replace(",", thousands)
    return f"{whole},{c % 100:02d} {sym}"


def plain_dec(c: int) -> str:
    return f"{c // 100}.{c % 100:02d}"


# ====================================================================== documents


class Flow:
    """Top-to-bottom text layout on a Canvas."""

    def __init__(self, c: Canvas, margin=28, y=28, x1=None):
        self.c, self.x0, self.x1, self.y = c, margin, (x1 if x1 is not None else c.w - margin), y

    def line(self, text, size, role="sans", align="left", fill=(25, 25, 25), rtl=False, lh=1.45):
        x = {"left": self.x0, "center": (self.x0 + self.x1) / 2, "right": self.x1}[align]
        anchor = {"left": "la", "center": "ma", "right": "ra"}[align]
        self.c.text((x, self.y), text, size, role, fill, anchor, rtl)
        self.y += size * lh

    def para(self, text, size, role="sans", align="left", fill=(25, 25, 25), rtl=False, lh=1.45,
             after=0.4) -> list[str]:
        lines = wrap(text, size, role, self.x1 - self.x0, self.c, rtl)
        for ln in lines:
            self.line(ln, size, role, align, fill, rtl, lh)
        self.y += size * after
        return lines

    def lr(self, left, right, size, role="sans", fill=(25, 25, 25), lh=1.45, rtl_left=False,
           rtl_right=False, left_role=None, right_role=None, leader=False):
        lr_, rr_ = left_role or role, right_role or role
        self.c.text((self.x0, self.y), left, size, lr_, fill, "la", rtl_left)
        self.c.text((self.x1, self.y), right, size, rr_, fill, "ra", rtl_right)
        if leader:  # dotted leader between a menu item and its price
            a = self.x0 + self.c.textlen(left, size, lr_, rtl_left) + 6
            b = self.x1 - self.c.textlen(right, size, rr_, rtl_right) - 6
            x = a
            while x < b:
                self.c.ellipse((x, self.y + size * 0.8, x + 1.6, self.y + size * 0.8 + 1.6),
                               fill=fill)
                x += 5
        self.y += size * lh

    def hr(self, color=(90, 90, 90), width=1.0, dashed=False, pad=6):
        self.y += pad
        if dashed:
            x = self.x0
            while x < self.x1:
                self.c.line([(x, self.y), (min(x + 5, self.x1), self.y)], color, width)
                x += 9
        else:
            self.c.line([(self.x0, self.y), (self.x1, self.y)], color, width)
        self.y += pad

    def gap(self, px):
        self.y += px


def finish_page(c: Canvas, rng, used_h=None, paper_color=(247, 244, 236)) -> Image.Image:
    """Downsample, crop to the used height, and give the page a paper texture."""
    img = c.result()
    if used_h is not None:
        img = img.crop((0, 0, img.width, int(min(img.height, used_h))))
    a = np.asarray(img, np.float32)
    p = paper(rng, a.shape[0], a.shape[1], paper_color)
    return to_image(a * (p / np.array(paper_color, np.float32)))


def barcode(c: Canvas, rng, x0, y, x1, h=34):
    x = x0
    while x < x1 - 3:
        w = float(rng.choice([1.0, 1.0, 2.0, 3.0]))
        c.rect((x, y, x + w, y + h), fill=(20, 20, 20))
        x += w + float(rng.choice([1.0, 2.0, 2.0, 3.0]))


def receipt(rng, rows, width=300, role="mono", size=14, rtl=False, num_role=None) -> Image.Image:
    """Rows: ('center', text, scale, bold) | ('item', name, price, bold) | ('sep',) |
    ('gap', px) | ('barcode',). For RTL receipts names sit on the right, prices on the left."""
    c = Canvas(width, 1400, (247, 246, 240))
    f = Flow(c, margin=16, y=18)
    for row in rows:
        kind = row[0]
        if kind == "center":
            _, text, scale, bold = row
            f.line(text, size * scale, role + ("_bold" if bold else ""), "center", rtl=rtl, lh=1.4)
        elif kind == "item":
            _, name, price, bold = row
            r = role + ("_bold" if bold else "")
            if rtl:
                nr = (num_role or role) + ("_bold" if bold else "")
                f.lr(price, name, size * (1.15 if bold else 1), r, rtl_right=True, lh=1.5, left_role=nr)
            else:
                f.lr(name, price, size * (1.15 if bold else 1), r, lh=1.5)
        elif kind == "sep":
            f.hr((60, 60, 60), 1, dashed=True, pad=5)
        elif kind == "gap":
            f.gap(row[1])
        elif kind == "barcode":
            f.gap(6)
            barcode(c, rng, f.x0 + 30, f.y, f.x1 - 30)
            f.y += 40
    return finish_page(c, rng, f.y + 14, (247, 246, 240))


def doc_receipt_en(w: Writer, seed) -> Sample:
    name = "receipt_en_grocery"
    rng = rng_for(seed, name)
    items = [("WHOLE MILK 1 GAL", 349), ("BANANAS 2.10 LB @ .59", 124), ("SOURDOUGH BREAD", 425),
             ("EGGS LARGE 12 CT", 399), ("CHEDDAR CHEESE 8 OZ", 579), ("GALA APPLES 3 @ .89", 267),
             ("COFFEE BEANS 12 OZ", 999)]
    sub = sum(p for _, p in items)
    tax = round(sub * 0.0625)
    total = sub + tax
    rows = [("center", "GREEN VALLEY MARKET", 1.25, True), ("center", "1428 Oak Street, Springfield", 0.9, False),
            ("center", "Tel (555) 013-2290", 0.9, False), ("gap", 4),
            ("item", "03/14/2024 17:42", "REG 02", False), ("sep",)]
    rows += [("item", n, f"{p / 100:.2f}", False) for n, p in items]
    rows += [("sep",), ("item", "SUBTOTAL", f"{sub / 100:.2f}", False),
             ("item", "TAX 6.25%", f"{tax / 100:.2f}", False), ("item", "TOTAL", money_en(total), True),
             ("sep",), ("item", "VISA **** 4821", money_en(total), False), ("gap", 4),
             ("center", f"ITEMS SOLD: {len(items)}", 0.9, False),
             ("center", "THANK YOU FOR SHOPPING!", 0.9, True), ("barcode",)]
    page = receipt(rng, rows)
    path = w.image(photograph_page(page, rng, 384, 640, angle=1.2), name)
    top = max(items, key=lambda t: t[1])
    return Sample(name, "document", ["en"], ["Latn"], chat([img_part(path)], [
        ("What is the total on this receipt?",
         f"The total is {money_en(total)}: a subtotal of {money_en(sub)} plus {money_en(tax)} "
         f"sales tax (6.25%). It was paid with a VISA card ending in 4821."),
        ("How many items were bought, and which one was the most expensive?",
         f"{len(items)} items were bought. The most expensive was {top[0].lower()} at {money_en(top[1])}."),
    ]))


def doc_receipt_fr(w: Writer, seed) -> Sample:
    name = "receipt_fr_boulangerie"
    rng = rng_for(seed, name)
    items = [("Baguette tradition", 120), ("Croissant au beurre x2", 240), ("Pain au chocolat", 135),
             ("Éclair au café", 310), ("Tarte aux fraises", 450), ("Café crème", 280)]
    total = sum(p for _, p in items)
    tva = total - round(total / 1.055)
    e = lambda c: money_eu(c)  # noqa: E731
    rows = [("center", "BOULANGERIE LEFÈVRE", 1.25, True), ("center", "Pâtisserie artisanale", 0.95, False),
            ("center", "12 rue des Écoles, 75005 Paris", 0.9, False), ("gap", 4),
            ("item", "Le 22/02/2024 à 08:17", "Caisse 1", False), ("sep",)]
    rows += [("item", n, e(p), False) for n, p in items]
    rows += [("sep",), ("item", "TOTAL TTC", e(total), True), ("item", "dont TVA 5,5 %", e(tva), False),
             ("item", "Carte bancaire", e(total), False), ("sep",),
             ("center", "Merci de votre visite !", 0.95, True), ("center", "À bientôt", 0.9, False),
             ("barcode",)]
    page = receipt(rng, rows)
    path = w.image(photograph_page(page, rng, 384, 640, angle=-1.4), name)
    eclair = dict(items)["Éclair au café"]
    return Sample(name, "document", ["fr"], ["Latn"], chat([img_part(path)], [
        ("Quel est le montant total de ce ticket de caisse ?",
         f"Le montant total est de {e(total)} TTC, dont {e(tva)} de TVA à 5,5 %. "
         "Il a été réglé par carte bancaire."),
        ("Combien coûte l'éclair au café ?", f"L'éclair au café coûte {e(eclair)}."),
    ]))


def doc_receipt_ja(w: Writer, seed) -> Sample:
    name = "receipt_ja_konbini"
    rng = rng_for(seed, name)
    items = [("おにぎり 鮭", 150), ("おにぎり ツナマヨ", 140), ("緑茶 500ml", 128), ("ミックスサンド", 298),
             ("チョコレート", 118)]
    sub = sum(p for _, p in items)
    tax = sub * 8 // 100
    total = sub + tax
    paid = 1000
    y = lambda v: f"¥{v:,}"  # noqa: E731
    rows = [("center", "ファミリーストア", 1.3, True), ("center", "渋谷道玄坂店", 1.0, False),
            ("center", "東京都渋谷区道玄坂2-10-7", 0.9, False), ("center", "2024年4月3日(水) 12:48", 0.9, False),
            ("sep",)]
    rows += [("item", n, y(p), False) for n, p in items]
    rows += [("sep",), ("item", "小計", y(sub), False), ("item", "消費税 (8%)", y(tax), False),
             ("item", "合計", y(total), True), ("item", "お預かり", y(paid), False),
             ("item", "お釣り", y(paid - total), False), ("sep",),
             ("center", "ありがとうございました", 0.95, False), ("barcode",)]
    page = receipt(rng, rows, role="cjk_jp", size=14)
    path = w.image(photograph_page(page, rng, 384, 640, angle=0.8, surface="gray"), name)
    top = max(items, key=lambda t: t[1])
    return Sample(name, "document", ["ja", "en"], ["Jpan"], chat([img_part(path)], [
        ("What is the total amount on this receipt, and how much change was given?",
         f"The total (合計) is {y(total)}: a subtotal of {y(sub)} plus {y(tax)} consumption tax at 8%. "
         f"The customer handed over {y(paid)} and received {y(paid - total)} in change (お釣り)."),
        ("一番高い商品は何ですか？", f"一番高い商品は「{top[0]}」で、{y(top[1])}です。"),
    ]))


def doc_receipt_ar(w: Writer, seed) -> Sample:
    name = "receipt_ar_supermarket"
    rng = rng_for(seed, name)
    items = [("خبز عربي", 300), ("حليب طازج", 650), ("تمر سكري", 2500), ("أرز بسمتي", 1875), ("شاي", 1200)]
    total = sum(p for _, p in items)
    vat = total - round(total / 1.15)
    rows = [("center", "سوبرماركت النخيل", 1.35, True), ("center", "الرياض، شارع الملك فهد", 0.95, False),
            ("center", "فاتورة ضريبية مبسطة", 0.95, False), ("item", "التاريخ", "2024/05/12", False),
            ("sep",)]
    rows += [("item", n, plain_dec(p), False) for n, p in items]
    rows += [("sep",), ("item", "الإجمالي بالريال", plain_dec(total), True),
             ("item", "ضريبة القيمة المضافة ١٥٪", plain_dec(vat), False), ("sep",),
             ("center", "شكراً لزيارتكم", 1.0, True), ("barcode",)]
    page = receipt(rng, rows, role="arabic", size=15, rtl=True, num_role="sans")
    path = w.image(photograph_page(page, rng, 384, 640, angle=-0.9), name)
    dates = dict(items)["تمر سكري"]
    note = "" if RAQM else "Arabic drawn without raqm: unshaped, left-to-right."
    return Sample(name, "document", ["ar", "en"], ["Arab"], chat([img_part(path)], [
        ("What is the total on this receipt?",
         f"The total (الإجمالي) is {plain_dec(total)} Saudi riyals, including {plain_dec(vat)} riyals of 15% VAT. "
         "The receipt is a simplified tax invoice from Al-Nakheel Supermarket (سوبرماركت النخيل) in Riyadh."),
        ("كم سعر التمر؟", f"سعر التمر السكري {plain_dec(dates)} ريال."),
    ]), notes=note)


def doc_invoice_de(w: Writer, seed) -> Sample:
    name = "invoice_de"
    rng = rng_for(seed, name)
    W, H = 452, 640
    c = Canvas(W, H, (250, 249, 245))
    f = Flow(c, margin=30, y=28)
    f.line("Müller & Söhne GmbH", 17, "sans_bold", fill=(20, 60, 120), lh=1.3)
    f.line("Büromöbel · Hauptstraße 7 · 80331 München", 10, fill=(90, 90, 90))
    c.text((W - 30, 30), "RECHNUNG", 20, "sans_bold", (20, 60, 120), "ra")
    f.gap(10)
    for ln in ["Büro Weiß KG", "z. Hd. Frau Jäger", "Lindenallee 12", "50667 Köln"]:
        f.line(ln, 11.5, lh=1.35)
    meta = [("Rechnungsnr.:", "2024-0815"), ("Datum:", "12.03.2024"), ("Fällig bis:", "11.04.2024")]
    y0 = 96
    for k, v in meta:
        c.text((W - 185, y0), k, 11, "sans", (80, 80, 80))
        c.text((W - 30, y0), v, 11, "sans_bold", (20, 20, 20), "ra")
        y0 += 17
    f.gap(18)
    items = [("Büroschrank, weiß", 1, 24900), ("Schreibtischstuhl „Ergo“", 2, 18950),
             ("Lieferung & Montage", 1, 4500)]
    x_qty, x_unit, x_sum = 250, 340, W - 34  # right edges of Menge | Einzelpreis | Gesamt
    c.rect((30, f.y - 4, W - 30, f.y + 18), fill=(226, 233, 244))
    hdr = f.y
    c.text((34, hdr), "Pos.", 10.5, "sans_bold")
    c.text((62, hdr), "Beschreibung", 10.5, "sans_bold")
    c.text((x_qty, hdr), "Menge", 10.5, "sans_bold", anchor="ra")
    c.text((x_unit, hdr), "Einzelpreis", 10.5, "sans_bold", anchor="ra")
    c.text((x_sum, hdr), "Gesamt", 10.5, "sans_bold", anchor="ra")
    f.gap(26)
    net = 0
    for i, (desc, qty, price) in enumerate(items, 1):
        c.text((40, f.y), str(i), 11)
        c.text((62, f.y), desc, 11)
        c.text((x_qty, f.y), str(qty), 11, anchor="ra")
        c.text((x_unit, f.y), money_eu(price), 11, anchor="ra")
        c.text((x_sum, f.y), money_eu(price * qty), 11, anchor="ra")
        net += price * qty
        f.gap(20)
        c.line([(30, f.y - 4), (W - 30, f.y - 4)], (200, 200, 200), 0.8)
    vat = round(net * 0.19)
    gross = net + vat
    f.gap(8)
    f.x0 = 230
    f.lr("Nettobetrag", money_eu(net), 11, lh=1.6)
    f.lr("MwSt. 19 %", money_eu(vat), 11, lh=1.6)
    f.hr((40, 40, 40), 1, pad=3)
    f.lr("Gesamtbetrag", money_eu(gross), 12.5, "sans_bold", lh=1.6)
    f.x0 = 30
    f.gap(22)
    f.para("Bitte überweisen Sie den Gesamtbetrag bis zum 11.04.2024 unter Angabe der "
           "Rechnungsnummer auf folgendes Konto:", 10.5)
    f.line("IBAN DE89 3704 0044 0532 0130 00 · BIC COBADEFFXXX", 10.5, "mono")
    f.gap(10)
    f.line("Vielen Dank für Ihren Auftrag!", 11, "sans_bold")
    c.line([(30, H - 40), (W - 30, H - 40)], (180, 180, 180), 0.8)
    c.text((W / 2, H - 32), "Müller & Söhne GmbH · Amtsgericht München HRB 123456 · USt-IdNr. DE123456789",
           8, fill=(110, 110, 110), anchor="ma")
    page = finish_page(c, rng, None, (250, 249, 245))
    path = w.image(photo_finish(page, rng, grain=1.5, vignette=0.05, blur=0.3), name)
    return Sample(name, "document", ["de", "en"], ["Latn"], chat([img_part(path)], [
        ("What is the invoice number, and by when must it be paid?",
         "It is invoice no. 2024-0815 from Müller & Söhne GmbH, dated 12.03.2024, and it must be paid by "
         "11.04.2024 (11 April 2024)."),
        ("Wie hoch ist der Gesamtbetrag inklusive Mehrwertsteuer?",
         f"Der Gesamtbetrag beträgt {money_eu(gross)}: {money_eu(net)} netto zuzüglich {money_eu(vat)} "
         "Mehrwertsteuer (19 %)."),
    ]))


def doc_notice_ru(w: Writer, seed) -> Sample:
    name = "notice_ru"
    rng = rng_for(seed, name)
    W = 400
    c = Canvas(W, 900, (250, 250, 246))
    f = Flow(c, margin=28, y=30)
    f.line("ОБЪЯВЛЕНИЕ", 26, "sans_bold", "center", fill=(170, 20, 20), lh=1.6)
    f.line("Уважаемые жильцы дома № 14!", 15, "sans_bold", "center", lh=1.8)
    f.para("В связи с плановым ремонтом теплосети 18 апреля с 10:00 до 16:00 в доме будет "
           "отключена горячая вода.", 14, lh=1.5, after=0.8)
    f.para("Просим заранее сделать запас воды.", 14, lh=1.5, after=0.8)
    f.para("Приносим извинения за временные неудобства.", 14, lh=1.5, after=1.6)
    f.line("Управляющая компания «Дом-Сервис»", 13, "sans_bold", "right")
    f.line("Тел.: +7 (495) 123-45-67", 12.5, align="right", fill=(60, 60, 60))
    page = finish_page(c, rng, f.y + 26, (250, 250, 246))
    path = w.image(photograph_page(page, rng, 448, 600, angle=-1.0, surface="gray"), name)
    return Sample(name, "document", ["ru", "en"], ["Cyrl"], chat([img_part(path)], [
        ("Когда и на сколько времени отключат горячую воду?",
         "Горячую воду отключат 18 апреля с 10:00 до 16:00, то есть на 6 часов."),
        ("Who posted this notice, and why?",
         "The building's management company «Дом-Сервис» (Dom-Servis) posted it: hot water will be "
         "switched off because of planned repairs to the heating network. They ask residents to store "
         "water in advance and give a phone number, +7 (495) 123-45-67."),
    ]))


def doc_menu_el(w: Writer, seed) -> Sample:
    name = "menu_el_taverna"
    rng = rng_for(seed, name)
    W = 380
    sections = [("Ορεκτικά", [("Τζατζίκι", 450), ("Χωριάτικη σαλάτα", 850), ("Σαγανάκι", 600)]),
                ("Κυρίως πιάτα", [("Μουσακάς", 1200), ("Σουβλάκι χοιρινό", 1050), ("Γεμιστά", 900)]),
                ("Επιδόρπια", [("Μπακλαβάς", 500), ("Γιαούρτι με μέλι", 400)])]
    c = Canvas(W, 900, (244, 236, 216))
    c.rect((10, 10, W - 10, 890), outline=(120, 40, 30), width=2)
    f = Flow(c, margin=34, y=30)
    f.line("ΤΑΒΕΡΝΑ «Ο ΓΙΑΝΝΗΣ»", 21, "serif_bold", "center", fill=(120, 40, 30), lh=1.4)
    f.line("Μενού", 15, "serif", "center", fill=(80, 60, 40), lh=1.8)
    for title, dishes in sections:
        f.gap(4)
        f.line(title, 16, "serif_bold", fill=(30, 60, 110), lh=1.6)
        for dish, price in dishes:
            f.lr(dish, money_eu(price), 14, "serif", lh=1.6, leader=True)
    f.gap(10)
    f.line("Καλή όρεξη!", 14, "serif", "center", fill=(120, 40, 30))
    used = f.y + 24
    c.rect((10, 10, W - 10, used - 10), outline=(120, 40, 30), width=2)
    page = finish_page(c, rng, used, (244, 236, 216))
    path = w.image(photograph_page(page, rng, 448, 600, angle=1.6), name)
    everything = [d for _, ds in sections for d in ds]
    cheapest = min(everything, key=lambda t: t[1])
    moussaka = dict(everything)["Μουσακάς"]
    return Sample(name, "document", ["el", "en"], ["Grek"], chat([img_part(path)], [
        ("How much does the moussaka (Μουσακάς) cost, and which dish is the cheapest on this menu?",
         f"Moussaka (Μουσακάς) costs {money_eu(moussaka)}. The cheapest item is {cheapest[0]} "
         f"(yogurt with honey) at {money_eu(cheapest[1])}."),
        ("Τι επιδόρπια υπάρχουν;",
         "Υπάρχουν δύο επιδόρπια: μπακλαβάς (5,00 €) και γιαούρτι με μέλι (4,00 €)."),
    ]))


def doc_notice_zh(w: Writer, seed) -> Sample:
    name = "notice_zh_meeting"
    rng = rng_for(seed, name)
    W, H = 452, 640
    c = Canvas(W, H, (251, 250, 247))
    f = Flow(c, margin=36, y=40)
    f.line("会议通知", 26, "cjk_sc_bold", "center", fill=(180, 20, 20), lh=1.4)
    c.line([(36, f.y), (W - 36, f.y)], (180, 20, 20), 2)
    f.gap(18)
    f.line("各部门同事：", 14, "cjk_sc", lh=1.8)
    f.para("　　公司定于2024年5月20日（星期一）下午2:30在三楼第一会议室召开第一季度工作总结会议，"
           "请各部门负责人及相关同事准时参加。", 14, "cjk_sc", lh=1.75, after=0.6)
    f.line("会议议程：", 14, "cjk_sc_bold", lh=1.8)
    for item in ["1. 第一季度销售总结", "2. 第二季度工作计划", "3. 新员工介绍"]:
        f.line("　　" + item, 14, "cjk_sc", lh=1.75)
    f.gap(6)
    f.para("　　请提前十分钟到场，如有特殊情况不能参加，请提前向行政部请假。", 14, "cjk_sc", lh=1.75)
    f.gap(30)
    f.line("行政部", 14, "cjk_sc", "right", lh=1.7)
    f.line("2024年5月15日", 14, "cjk_sc", "right")
    # red seal over the signature, as on Chinese office notices
    cx, cy = W - 150, f.y - 34
    c.ellipse((cx - 42, cy - 42, cx + 42, cy + 42), outline=(210, 30, 30, 190), width=3)
    c.text((cx, cy - 8), "★", 20, "symbol", (210, 30, 30, 190), "mm")
    c.text((cx, cy + 18), "行政专用章", 11, "cjk_sc_bold", (210, 30, 30, 190), "mm")
    page = finish_page(c, rng, None, (251, 250, 247))
    path = w.image(photo_finish(page, rng, grain=1.5, vignette=0.05, blur=0.3), name)
    return Sample(name, "document", ["zh", "en"], ["Hans"], chat([img_part(path)], [
        ("会议在什么时间、什么地点举行？",
         "会议定于2024年5月20日（星期一）下午2:30在三楼第一会议室举行。"),
        ("What is on the agenda? Answer in English.",
         "The agenda has three items: 1) a review of first-quarter sales, 2) the work plan for the second "
         "quarter, and 3) introducing new employees. Attendees are asked to arrive ten minutes early."),
    ]))


def doc_ticket_hi(w: Writer, seed) -> Sample:
    name = "ticket_hi_rail"
    rng = rng_for(seed, name)
    W, H = 600, 300
    c = Canvas(W, H, (246, 243, 232))
    c.rect((0, 0, W, 46), fill=(28, 60, 130))
    c.text((20, 23), "भारतीय रेल", 20, "deva_bold", (255, 255, 255), "lm")
    c.text((W - 20, 23), "INDIAN RAILWAYS · e-TICKET", 14, "sans_bold", (255, 255, 255), "rm")
    fields = [
        ("यात्री का नाम:", "राहुल शर्मा"),
        ("से:", "नई दिल्ली (NDLS)"),
        ("तक:", "मुंबई सेंट्रल (MMCT)"),
        ("ट्रेन:", "12952 राजधानी एक्सप्रेस"),
        ("यात्रा की तिथि:", "15/06/2024"),
        ("प्रस्थान:", "16:55"),
    ]
    y = 62
    for k, v in fields:
        c.text((22, y), k, 14, "deva", (70, 70, 70))
        c.text((140, y), v, 14, "deva_bold", (20, 20, 20))
        y += 30
    c.line([(400, 58), (400, H - 20)], (150, 150, 150), 1)
    for i, (k, v) in enumerate([("कोच", "B4"), ("सीट", "32"), ("किराया", "₹3,145")]):
        c.text((420, 64 + i * 62), k, 13, "deva", (70, 70, 70))
        c.text((420, 84 + i * 62), v, 20, "deva_bold", (20, 20, 20))
    c.text((22, H - 26), "PNR 4521836907", 12, "mono", (60, 60, 60))
    barcode(c, rng, 250, H - 52, 390, 32)
    page = finish_page(c, rng, None, (246, 243, 232))
    path = w.image(photograph_page(page, rng, 640, 360, angle=-1.2), name)
    return Sample(name, "document", ["hi", "en"], ["Deva", "Latn"], chat([img_part(path)], [
        ("Between which stations is this ticket, and when does the train leave?",
         "It is a ticket from New Delhi (NDLS) to Mumbai Central (MMCT) on train 12952 Rajdhani Express, "
         "leaving on 15/06/2024 at 16:55. The passenger is Rahul Sharma (राहुल शर्मा)."),
        ("किराया कितना है और सीट नंबर क्या है?", "किराया ₹3,145 है और सीट नंबर 32 है (कोच B4)।"),
    ]), notes="" if RAQM else "Devanagari drawn without raqm: no conjunct shaping.")


LABEL_LINES = [
    ("EN", "sans", "Shake well before use. Store below 25 °C."),
    ("ES", "sans", "Agítese antes de usar. Consérvese por debajo de 25 °C."),
    ("FR", "sans", "Bien agiter avant emploi. Conserver à moins de 25 °C."),
    ("DE", "sans", "Vor Gebrauch gut schütteln. Unter 25 °C lagern."),
    ("PL", "sans", "Przed użyciem wstrząsnąć. Przechowywać w temperaturze poniżej 25 °C."),
    ("EL", "sans", "Ανακινήστε καλά πριν από τη χρήση. Φυλάσσετε σε θερμοκρασία κάτω των 25 °C."),
    ("RU", "sans", "Перед применением взболтать. Хранить при температуре ниже 25 °C."),
    ("ZH", "cjk_sc", "使用前请摇匀。请在25 °C以下保存。"),
    ("JA", "cjk_jp", "ご使用前によく振ってください。25 °C以下で保管してください。"),
    ("KO", "cjk_kr", "사용 전에 잘 흔들어 주십시오. 25 °C 이하에서 보관하십시오."),
]


def doc_label_multi(w: Writer, seed) -> Sample:
    name = "label_multilingual"
    rng = rng_for(seed, name)
    W = 420
    c = Canvas(W, 1000, (255, 255, 255))
    c.rect((0, 0, W, 64), fill=(245, 160, 30))
    c.text((20, 12), "SOLÉA Sun Lotion SPF 30", 19, "sans_bold", (255, 255, 255))
    c.text((20, 40), "200 ml · water resistant", 12, "sans", (255, 255, 255))
    f = Flow(c, margin=20, y=80)
    for code, role, text in LABEL_LINES:
        c.text((f.x0, f.y), code, 11, "sans_bold", (200, 110, 10))
        f.x0 = 50
        f.para(text, 11.5, role, lh=1.4, after=0.35)
        f.x0 = 20
    f.gap(6)
    c.text((20, f.y), "Made in EU · Lot 24B17 · EXP 09/2027", 10, "mono", (90, 90, 90))
    used = f.y + 26
    page = finish_page(c, rng, used, (250, 250, 250))
    path = w.image(photograph_page(page, rng, 480, 620, angle=0.7, surface="gray"), name)
    langs = "English, Spanish, French, German, Polish, Greek, Russian, Chinese, Japanese and Korean"
    return Sample(name, "document", ["en", "es", "fr", "de", "pl", "el", "ru", "zh", "ja", "ko"],
                  ["Latn", "Grek", "Cyrl", "Hans", "Jpan", "Kore"], chat([img_part(path)], [
                      ("Which languages is this label written in?",
                       f"The instructions are given in ten languages, each marked with its code: {langs}."),
                      ("What does it tell me to do, and what is the product?",
                       "Shake the bottle well before use and store it below 25 °C. The product is SOLÉA Sun "
                       "Lotion SPF 30, a 200 ml water-resistant sunscreen; the lot is 24B17 and it expires "
                       "in 09/2027."),
                  ]))


WATER_CYCLE = [
    "Water on Earth is always moving. The sun heats oceans, lakes and rivers, and some of the water "
    "evaporates into the air as vapour. Plants release water vapour through their leaves as well.",
    "As the warm, moist air rises, it cools and the vapour condenses into tiny droplets that form "
    "clouds. When the droplets grow heavy enough, they fall back to the ground as rain, snow or hail.",
    "Part of this precipitation flows over the land into streams and rivers; the rest soaks into the "
    "soil and refills underground aquifers. Sooner or later the water returns to the sea, and the "
    "cycle begins again.",
]


def doc_page_en(w: Writer, seed) -> Sample:
    name = "page_en_textbook"
    rng = rng_for(seed, name)
    W, H = 452, 640
    c = Canvas(W, H, (252, 251, 248))
    f = Flow(c, margin=40, y=48)
    title = "3. The Water Cycle"
    f.line(title, 22, "serif_bold", lh=1.9)
    for p in WATER_CYCLE:
        f.para(p, 13.5, "serif", lh=1.55, after=0.9)
    c.text((W / 2, H - 40), "42", 12, "serif", (60, 60, 60), "ma")
    page = finish_page(c, rng, None, (252, 251, 248))
    path = w.image(photo_finish(page, rng, grain=1.5, vignette=0.06, blur=0.25), name)
    full = "\n\n".join([title] + WATER_CYCLE + ["42"])
    return Sample(name, "document", ["en"], ["Latn"], chat([img_part(path)], [
        ("Output all text in the image.", full),
        ("Summarize the page in one sentence.",
         "The page explains the water cycle: water evaporates, condenses into clouds, falls as "
         "precipitation and flows or soaks back towards the sea, where the cycle starts again."),
    ]))


DOCUMENTS = [doc_receipt_en, doc_receipt_fr, doc_receipt_ja, doc_receipt_ar, doc_invoice_de, doc_notice_ru,
             doc_menu_el, doc_notice_zh, doc_ticket_hi, doc_label_multi, doc_page_en]


# ================================================================ charts & tables

PALETTE = [(52, 110, 185), (236, 128, 42), (70, 160, 90), (200, 65, 70), (140, 100, 180), (150, 150, 150)]
INK, GRID = (40, 40, 48), (222, 224, 230)


def axes(c: Canvas, box, vmin, vmax, step, fmt=str, size=11, ylabel=None):
    """Horizontal grid lines with value ticks; returns value -> y mapping."""
    x0, y0, x1, y1 = box
    ymap = lambda v: y1 - (v - vmin) / (vmax - vmin) * (y1 - y0)  # noqa: E731
    v = vmin
    while v <= vmax + 1e-9:
        y = ymap(v)
        c.line([(x0, y), (x1, y)], GRID, 1)
        c.text((x0 - 6, y), fmt(v), size, "sans", (90, 90, 98), "rm")
        v += step
    c.line([(x0, y1), (x1, y1)], INK, 1.2)
    if ylabel:
        lab = Canvas(int(y1 - y0), 20, (255, 255, 255), ss=c.ss)
        lab.text(((y1 - y0) / 2, 10), ylabel, size, "sans", (70, 70, 78), "mm")
        im = lab.img.rotate(90, expand=True)
        c.img.paste(im, (int((x0 - 52) * c.ss), int(y0 * c.ss)))
    return ymap


def chart_title(c: Canvas, title, subtitle=None):
    c.text((24, 18), title, 17, "sans_bold", INK)
    if subtitle:
        c.text((24, 42), subtitle, 11.5, "sans", (110, 110, 118))


def legend(c: Canvas, x, y, names, colors, size=11.5, marker="box"):
    for n, col in zip(names, colors):
        if marker == "box":
            c.rect((x, y - 5, x + 12, y + 7), fill=col)
        else:
            c.line([(x, y + 1), (x + 16, y + 1)], col, 2.5)
            c.ellipse((x + 4.5, y - 2.5, x + 11.5, y + 4.5), fill=col)
        c.text((x + 20, y + 1), n, size, "sans", INK, "lm")
        x += 20 + c.textlen(n, size) + 22


def chart_bar(w: Writer, seed) -> Sample:
    name = "chart_bar_sales"
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun"]
    vals = [120, 135, 98, 160, 172, 150]
    c = Canvas(640, 440)
    chart_title(c, "Monthly sales, first half of 2024", "Units sold per month · Store #12")
    box = (84, 80, 612, 392)
    ymap = axes(c, box, 0, 200, 50, ylabel="Units sold")
    slot = (box[2] - box[0]) / len(vals)
    for i, (m, v) in enumerate(zip(months, vals)):
        xa, xb = box[0] + slot * (i + 0.2), box[0] + slot * (i + 0.8)
        c.rect((xa, ymap(v), xb, box[3]), fill=PALETTE[0])
        c.text(((xa + xb) / 2, ymap(v) - 5), str(v), 12, "sans_bold", INK, "md")
        c.text(((xa + xb) / 2, box[3] + 8), m, 12, "sans", INK, "ma")
    path = w.image(c.result(), name, "flat")
    best = max(range(len(vals)), key=vals.__getitem__)
    full = {"Jan": "January", "Feb": "February", "Mar": "March", "Apr": "April", "May": "May", "Jun": "June"}
    return Sample(name, "chart", ["en"], ["Latn"], chat([img_part(path)], [
        ("Which month had the highest sales, and how many units were sold then?",
         f"{full[months[best]]} had the highest sales, with {vals[best]} units."),
        ("What were the total sales in the first quarter (January to March)?",
         f"{vals[0]} + {vals[1]} + {vals[2]} = {sum(vals[:3])} units."),
    ]))


def chart_line(w: Writer, seed) -> Sample:
    name = "chart_line_temperature"
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    series = {"Madrid": [24, 26, 27, 25, 29, 31, 30], "Oslo": [14, 15, 13, 16, 17, 15, 18]}
    c = Canvas(640, 440)
    chart_title(c, "Average daily temperature (°C)", "Week 23, 2024")
    legend(c, 400, 46, list(series), PALETTE[:2], marker="line")
    box = (70, 80, 612, 392)
    ymap = axes(c, box, 10, 35, 5, ylabel="°C")
    xmap = lambda i: box[0] + 30 + i * (box[2] - box[0] - 60) / (len(days) - 1)  # noqa: E731
    for i, d in enumerate(days):
        c.text((xmap(i), box[3] + 8), d, 12, "sans", INK, "ma")
    for vals, col in zip(series.values(), PALETTE):
        pts = [(xmap(i), ymap(v)) for i, v in enumerate(vals)]
        c.line(pts, col, 2.5)
        for (x, y), v in zip(pts, vals):
            c.ellipse((x - 4, y - 4, x + 4, y + 4), fill=col, outline=(255, 255, 255), width=1.5)
            c.text((x, y - 8), str(v), 11, "sans_bold", col, "md")
    path = w.image(c.result(), name, "flat")
    oslo = series["Oslo"]
    warm = max(range(7), key=oslo.__getitem__)
    names = dict(zip(days, ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]))
    return Sample(name, "chart", ["en"], ["Latn"], chat([img_part(path)], [
        ("What was the temperature in Madrid on Wednesday?", f"It was {series['Madrid'][2]} °C."),
        ("Which was Oslo's warmest day, and how much warmer was Madrid on that day?",
         f"Oslo's warmest day was {names[days[warm]]} at {oslo[warm]} °C; Madrid had "
         f"{series['Madrid'][warm]} °C that day, {series['Madrid'][warm] - oslo[warm]} degrees warmer."),
    ]))


def chart_pie(w: Writer, seed) -> Sample:
    name = "chart_pie_fruit"
    parts = [("Apple", 35), ("Banana", 25), ("Orange", 20), ("Grape", 12), ("Other", 8)]
    n_people = 200
    c = Canvas(560, 420)
    chart_title(c, "Favourite fruit", f"Survey of {n_people} people")
    cx, cy, r = 200, 236, 150
    start = -90.0
    for (_label, pct), col in zip(parts, PALETTE[:4] + [PALETTE[5]]):
        end = start + pct * 3.6
        c.pieslice((cx - r, cy - r, cx + r, cy + r), start, end, fill=col, outline=(255, 255, 255), width=2)
        mid = math.radians((start + end) / 2)
        c.text((cx + 0.66 * r * math.cos(mid), cy + 0.66 * r * math.sin(mid)), f"{pct}%", 14, "sans_bold",
               (255, 255, 255), "mm")
        start = end
    for i, ((label, pct), col) in enumerate(zip(parts, PALETTE[:4] + [PALETTE[5]])):
        y = 150 + i * 30
        c.rect((392, y - 7, 408, y + 9), fill=col)
        c.text((418, y + 1), f"{label} ({pct}%)", 13, "sans", INK, "lm")
    path = w.image(c.result(), name, "flat")
    orange = dict(parts)["Orange"]
    return Sample(name, "chart", ["en"], ["Latn"], chat([img_part(path)], [
        ("What percentage of people chose orange, and how many people is that?",
         f"{orange}% chose orange, which is {orange * n_people // 100} of the {n_people} people surveyed."),
        ("Rank the fruits from most to least popular.",
         ", ".join(f"{lab} ({p}%)" for lab, p in parts[:4]) + f"; {parts[4][1]}% chose something else."),
    ]))


def chart_hbar(w: Writer, seed) -> Sample:
    name = "chart_hbar_languages"
    data = [("Python", 51), ("JavaScript", 46), ("SQL", 38), ("TypeScript", 31), ("Java", 27), ("C++", 21)]
    c = Canvas(600, 400)
    chart_title(c, "Languages used in the last year", "Example developer survey, % of respondents")
    x0, x1, y0 = 120, 560, 82
    xmap = lambda v: x0 + v / 60 * (x1 - x0)  # noqa: E731
    for v in range(0, 61, 10):
        c.line([(xmap(v), y0 - 4), (xmap(v), 372)], GRID, 1)
        c.text((xmap(v), 378), f"{v}%", 10.5, "sans", (90, 90, 98), "ma")
    for i, (lang, v) in enumerate(data):
        y = y0 + i * 48
        c.rect((x0, y, xmap(v), y + 32), fill=PALETTE[2], radius=3)
        c.text((x0 - 10, y + 16), lang, 13, "sans", INK, "rm")
        c.text((xmap(v) + 6, y + 16), f"{v}%", 12, "sans_bold", INK, "lm")
    path = w.image(c.result(), name, "flat")
    return Sample(name, "chart", ["en"], ["Latn"], chat([img_part(path)], [
        ("Which language ranks third in this chart, and what share of respondents use it?",
         f"{data[2][0]} ranks third, used by {data[2][1]}% of respondents."),
        ("How many percentage points separate Python and Java?",
         f"Python is at {data[0][1]}% and Java at {data[4][1]}%, a gap of {data[0][1] - data[4][1]} points."),
    ]))


def chart_grouped(w: Writer, seed) -> Sample:
    name = "chart_grouped_revenue"
    qs = ["Q1", "Q2", "Q3", "Q4"]
    a, b = [42, 48, 51, 56], [31, 40, 54, 63]  # tenths of a million dollars
    c = Canvas(640, 440)
    chart_title(c, "Quarterly revenue by product", "Million US$, fiscal year 2024")
    legend(c, 420, 46, ["Product A", "Product B"], PALETTE[:2])
    box = (70, 80, 612, 392)
    ymap = axes(c, box, 0, 7, 1, ylabel="Million $")
    slot = (box[2] - box[0]) / 4
    for i, q in enumerate(qs):
        for j, (vals, col) in enumerate(((a, PALETTE[0]), (b, PALETTE[1]))):
            xa = box[0] + slot * i + slot * 0.14 + j * slot * 0.36
            xb = xa + slot * 0.34
            v = vals[i] / 10
            c.rect((xa, ymap(v), xb, box[3]), fill=col)
            c.text(((xa + xb) / 2, ymap(v) - 4), f"{v:.1f}", 11.5, "sans_bold", INK, "md")
        c.text((box[0] + slot * (i + 0.5), box[3] + 8), q, 12.5, "sans", INK, "ma")
    path = w.image(c.result(), name, "flat")
    first = next(i for i in range(4) if b[i] > a[i])
    return Sample(name, "chart", ["en"], ["Latn"], chat([img_part(path)], [
        ("In which quarter did Product B first earn more than Product A?",
         f"In {qs[first]}: Product B made {b[first] / 10:.1f} million $ against {a[first] / 10:.1f} million $ "
         "for Product A."),
        ("What was the combined revenue of both products in Q4?",
         f"{a[3] / 10:.1f} + {b[3] / 10:.1f} = {(a[3] + b[3]) / 10:.1f} million $."),
    ]))


def chart_scatter(w: Writer, seed) -> Sample:
    name = "chart_scatter_study"
    rng = rng_for(seed, name)
    hours = np.round(rng.uniform(0.5, 9.0, 24), 1)
    scores = np.clip(np.round(44 + 5.2 * hours + rng.normal(0, 5, 24)), 0, 99).astype(int)
    slope, icpt = np.polyfit(hours, scores, 1)
    c = Canvas(600, 440)
    chart_title(c, "Study time vs. exam score", "24 students, final exam 2024")
    box = (70, 76, 572, 388)
    ymap = axes(c, box, 30, 100, 10, ylabel="Exam score")
    xmap = lambda h: box[0] + h / 10 * (box[2] - box[0])  # noqa: E731
    for h in range(0, 11, 2):
        c.text((xmap(h), box[3] + 8), str(h), 11, "sans", (90, 90, 98), "ma")
    c.text(((box[0] + box[2]) / 2, box[3] + 26), "Hours of study per week", 11.5, "sans", (70, 70, 78), "ma")
    c.line([(xmap(0), ymap(icpt)), (xmap(10), ymap(icpt + 10 * slope))], (200, 65, 70, 170), 2)
    for h, s in zip(hours, scores):
        c.ellipse((xmap(h) - 5, ymap(s) - 5, xmap(h) + 5, ymap(s) + 5), fill=PALETTE[4] + (215,))
    top = int(np.argmax(scores))
    c.text((xmap(hours[top]) - 8, ymap(scores[top]) - 8), f"max {scores[top]}", 11, "sans_bold", INK, "rd")
    path = w.image(c.result(), name, "flat")
    return Sample(name, "chart", ["en"], ["Latn"], chat([img_part(path)], [
        ("What relationship does this scatter plot show?",
         "A clear positive correlation: students who studied more hours per week tended to score higher. "
         f"The red trend line rises by about {slope:.0f} points per extra hour, from about {icpt:.0f} points "
         f"with no study to about {icpt + 10 * slope:.0f} at 10 hours."),
        ("What is the highest score, and how long did that student study?",
         f"The highest score is {scores[top]}, by a student who studied about {hours[top]:.1f} hours per week."),
    ]))


def table_image(c: Canvas, x0, y0, headers, rows, widths, aligns, size=13, role="sans", head_bg=(52, 110, 185),
                zebra=(242, 245, 250), row_h=30):
    xs = [x0]
    for wd in widths:
        xs.append(xs[-1] + wd)
    c.rect((xs[0], y0, xs[-1], y0 + row_h), fill=head_bg)
    for j, hdr in enumerate(headers):
        _cell(c, xs[j], xs[j + 1], y0, row_h, hdr, size, role + "_bold", (255, 255, 255), aligns[j])
    for i, row in enumerate(rows):
        y = y0 + row_h * (i + 1)
        if i % 2:
            c.rect((xs[0], y, xs[-1], y + row_h), fill=zebra)
        for j, cell in enumerate(row):
            _cell(c, xs[j], xs[j + 1], y, row_h, str(cell), size, role, INK, aligns[j])
        c.line([(xs[0], y + row_h), (xs[-1], y + row_h)], GRID, 1)
    c.rect((xs[0], y0, xs[-1], y0 + row_h * (len(rows) + 1)), outline=(180, 184, 192), width=1)
    return y0 + row_h * (len(rows) + 1)


def _cell(c, xa, xb, y, h, text, size, role, fill, align):
    if align == "l":
        c.text((xa + 10, y + h / 2), text, size, role, fill, "lm")
    elif align == "r":
        c.text((xb - 10, y + h / 2), text, size, role, fill, "rm")
    else:
        c.text(((xa + xb) / 2, y + h / 2), text, size, role, fill, "mm")


def table_scores(w: Writer, seed) -> Sample:
    name = "table_exam_scores"
    data = [("Maria", 92, 88, 95), ("Tom", 78, 85, 80), ("Aiko", 95, 93, 89), ("Lukas", 84, 79, 91),
            ("Fatima", 88, 94, 86)]
    rows = [(n, m, p, ch, f"{(m + p + ch) / 3:.1f}") for n, m, p, ch in data]
    c = Canvas(560, 300)
    chart_title(c, "Class 10B · End-of-term results")
    table_image(c, 24, 56, ["Student", "Math", "Physics", "Chemistry", "Average"], rows,
                [140, 90, 100, 110, 72], ["l", "c", "c", "c", "c"])
    c.text((24, 268), "Scores out of 100. Average rounded to one decimal.", 11, "sans", (110, 110, 118))
    path = w.image(c.result(), name, "flat")
    avg = {n: (m + p + ch) / 3 for n, m, p, ch in data}
    best = max(avg, key=avg.get)
    assert sorted(avg.values())[-1] > sorted(avg.values())[-2]
    phys = {n: p for n, _, p, _ in data}
    top_phys = max(phys, key=phys.get)
    return Sample(name, "chart", ["en"], ["Latn"], chat([img_part(path)], [
        ("What did Maria score in Physics, and who has the highest average?",
         f"Maria scored {phys['Maria']} in Physics. {best} has the highest average, {avg[best]:.1f}."),
        ("Who got the best Physics score?", f"{top_phys}, with {phys[top_phys]} points."),
    ]))


def table_timetable(w: Writer, seed) -> Sample:
    name = "table_train_departures"
    rows = [("ICE 578", "Hamburg Hbf", "08:04", "09:52", "7"), ("IC 2314", "Hamburg Hbf", "10:15", "12:21", "5"),
            ("RE 4410", "Bremen Hbf", "10:32", "13:48", "3"), ("ICE 1025", "München Hbf", "11:06", "15:20", "8"),
            ("IC 2027", "Köln Hbf", "12:40", "17:03", "2")]
    c = Canvas(600, 270, (250, 250, 252))
    chart_title(c, "Berlin Hbf · Departures", "Timetable valid from 15 December 2024")
    table_image(c, 24, 66, ["Train", "Destination", "Departs", "Arrives", "Platform"], rows,
                [100, 170, 100, 100, 82], ["l", "l", "c", "c", "c"], head_bg=(30, 40, 70))
    path = w.image(c.result(), name, "flat")
    ic = rows[1]
    ice = rows[3]
    mins = lambda t: int(t[:2]) * 60 + int(t[3:])  # noqa: E731
    d = mins(ice[3]) - mins(ice[2])
    return Sample(name, "chart", ["en", "de"], ["Latn"], chat([img_part(path)], [
        ("When does the IC 2314 arrive in Hamburg, and from which platform does it leave?",
         f"The IC 2314 leaves Berlin at {ic[2]} from platform {ic[4]} and arrives at Hamburg Hbf at {ic[3]}."),
        ("How long does the ICE 1025 take to Munich?",
         f"It departs at {ice[2]} and arrives at {ice[3]}, so the trip takes {d // 60} h {d % 60} min."),
    ]))


def table_sales_zh(w: Writer, seed) -> Sample:
    name = "table_sales_zh"
    data = [("华东", 120, 135, 150), ("华南", 98, 110, 125), ("华北", 105, 99, 118), ("西部", 76, 84, 90)]
    rows = [(r, a, b, c_, a + b + c_) for r, a, b, c_ in data]
    cv = Canvas(560, 260)
    cv.text((24, 18), "2024年第一季度各地区销售额（万元）", 17, "cjk_sc_bold", INK)
    table_image(cv, 24, 60, ["地区", "一月", "二月", "三月", "合计"], rows, [120, 96, 96, 96, 104],
                ["c", "r", "r", "r", "r"], role="cjk_sc", head_bg=(180, 50, 50), zebra=(250, 242, 240))
    cv.text((24, 230), "数据来源：公司财务部", 11, "cjk_sc", (110, 110, 118))
    path = w.image(cv.result(), name, "flat")
    best = max(rows, key=lambda r: r[4])
    huabei = dict((r[0], r) for r in rows)["华北"]
    return Sample(name, "chart", ["zh"], ["Hans"], chat([img_part(path)], [
        ("哪个地区第一季度的销售额最高？是多少？", f"{best[0]}地区最高，第一季度合计{best[4]}万元。"),
        ("华北地区二月的销售额是多少？比一月多还是少？",
         f"华北地区二月的销售额是{huabei[2]}万元，比一月（{huabei[1]}万元）少{huabei[1] - huabei[2]}万元。"),
    ]))


CHARTS = [chart_bar, chart_line, chart_pie, chart_hbar, chart_grouped, chart_scatter, table_scores,
          table_timetable, table_sales_zh]


# ================================================================== UI screenshots

UI_BLUE, UI_TEXT, UI_MUTED, UI_LINE = (37, 99, 235), (28, 30, 36), (110, 114, 124), (218, 221, 228)


def browser(c: Canvas, url: str, tab: str, h=68):
    c.rect((0, 0, c.w, h), fill=(222, 225, 231))
    for i, col in enumerate([(237, 106, 94), (245, 191, 79), (98, 197, 84)]):
        c.ellipse((12 + i * 18, 11, 24 + i * 18, 23), fill=col)
    c.rect((72, 6, 262, 32), fill=(250, 250, 252), radius=7)
    c.text((84, 19), tab, 11.5, "sans", UI_TEXT, "lm")
    c.text((248, 19), "×", 13, "sans", UI_MUTED, "mm")
    c.rect((0, 32, c.w, h), fill=(250, 250, 252))
    c.text((18, 50), "←   →   ⟳", 13, "symbol", UI_MUTED, "lm")
    c.rect((100, 38, c.w - 16, 62), fill=(236, 238, 242), radius=12)
    c.text((116, 50), url, 12, "sans", (60, 64, 72), "lm")
    c.line([(0, h), (c.w, h)], UI_LINE, 1)


def window(c: Canvas, title: str, box=None, bar=30, dark=False):
    x0, y0, x1, y1 = box or (0, 0, c.w, c.h)
    c.rect((x0, y0, x1, y0 + bar), fill=(52, 54, 60) if dark else (232, 233, 237))
    for i, col in enumerate([(237, 106, 94), (245, 191, 79), (98, 197, 84)]):
        c.ellipse((x0 + 12 + i * 18, y0 + bar / 2 - 6, x0 + 24 + i * 18, y0 + bar / 2 + 6), fill=col)
    c.text(((x0 + x1) / 2, y0 + bar / 2), title, 12, "sans", (220, 222, 228) if dark else UI_TEXT, "mm")


def phone_status(c: Canvas, dark=False, battery=82):
    col = (255, 255, 255) if dark else UI_TEXT
    c.text((22, 16), "9:41", 12.5, "sans_bold", col, "lm")
    for i in range(4):
        c.rect((c.w - 92 + i * 6, 20 - 3 - i * 2.5, c.w - 88 + i * 6, 21), fill=col)
    c.rect((c.w - 58, 10, c.w - 32, 22), outline=col, width=1.2, radius=3)
    c.rect((c.w - 56, 12, c.w - 56 + 22 * battery / 100, 20), fill=col, radius=2)
    c.text((c.w - 28, 16), f"{battery}%", 10.5, "sans", col, "lm")


def button(c: Canvas, box, label, bg=UI_BLUE, fg=(255, 255, 255), size=13, radius=8, outline=None):
    c.rect(box, fill=bg, radius=radius, outline=outline)
    c.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), label, size, "sans_bold", fg, "mm")


def field(c: Canvas, box, value, label=None, size=13, focus=False):
    if label:
        c.text((box[0], box[1] - 20), label, 12, "sans_bold", UI_TEXT)
    c.rect(box, fill=(255, 255, 255), outline=UI_BLUE if focus else (196, 200, 208), width=1.6 if focus else 1,
           radius=6)
    c.text((box[0] + 12, (box[1] + box[3]) / 2), value, size, "sans", UI_TEXT, "lm")


def toggle(c: Canvas, x, y, on):
    c.rect((x, y, x + 40, y + 22), fill=(52, 199, 89) if on else (210, 212, 218), radius=11)
    kx = x + 29 if on else x + 11
    c.ellipse((kx - 9, y + 2, kx + 9, y + 20), fill=(255, 255, 255))


def star(c: Canvas, cx, cy, r, fill):
    pts = []
    for k in range(10):
        a = -math.pi / 2 + k * math.pi / 5
        rr = r if k % 2 == 0 else r * 0.45
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    c.polygon(pts, fill=fill)


def ui_login(w: Writer, seed) -> Sample:
    name = "ui_login_web"
    c = Canvas(640, 420, (243, 245, 249))
    browser(c, "https://accounts.nimbus.example/login", "Sign in – Nimbus")
    c.rect((190, 88, 450, 404), fill=(255, 255, 255), outline=UI_LINE, radius=12)
    c.ellipse((302, 100, 338, 136), fill=UI_BLUE)
    c.text((320, 118), "N", 18, "sans_bold", (255, 255, 255), "mm")
    c.text((320, 146), "Sign in to Nimbus", 17, "sans_bold", UI_TEXT, "ma")
    field(c, (214, 200, 426, 234), "jane.doe@example.com", "Email")
    field(c, (214, 262, 426, 296), "••••••••••", "Password", focus=True)
    c.rect((214, 308, 228, 322), fill=UI_BLUE, radius=3)
    c.line([(217, 315), (220.5, 318.5), (225.5, 311)], (255, 255, 255), 1.8)
    c.text((234, 315), "Remember me", 11.5, "sans", UI_TEXT, "lm")
    c.text((426, 315), "Forgot password?", 11.5, "sans", UI_BLUE, "rm")
    button(c, (214, 334, 426, 368), "Sign in")
    c.text((320, 386), "New here? Create an account", 11.5, "sans", UI_MUTED, "mm")
    path = w.image(c.result(), name, "flat")
    return Sample(name, "ui", ["en"], ["Latn"], chat([img_part(path)], [
        ("What email address has been entered, and what does the main button say?",
         "The email field contains jane.doe@example.com, and the main blue button says \"Sign in\"."),
        ("Is \"Remember me\" checked? And where would I go if I lost my password?",
         "Yes, the \"Remember me\" box is checked. If you lost your password, click the \"Forgot password?\" "
         "link to the right of it, above the Sign in button."),
    ]))


def ui_settings(w: Writer, seed) -> Sample:
    name = "ui_settings_mobile"
    c = Canvas(320, 640, (242, 242, 247))
    phone_status(c)
    c.text((20, 44), "Settings", 26, "sans_bold", UI_TEXT)
    c.rect((16, 86, 304, 114), fill=(227, 227, 233), radius=10)
    c.text((30, 100), "Search", 13, "sans", (140, 140, 150), "lm")
    groups = [
        [("Airplane mode", (245, 154, 35), ("toggle", False)), ("Wi-Fi", (37, 132, 245), ("value", "HomeNet-5G")),
         ("Bluetooth", (37, 132, 245), ("value", "Off")), ("Mobile data", (52, 199, 89), ("toggle", True))],
        [("Notifications", (235, 77, 61), ("chev", "")), ("Dark mode", (88, 86, 214), ("toggle", True)),
         ("Battery", (52, 199, 89), ("value", "82%")), ("Storage", (142, 142, 147), ("value", "41.6 GB used"))],
    ]
    y = 130
    for g in groups:
        c.rect((16, y, 304, y + 44 * len(g)), fill=(255, 255, 255), radius=12)
        for i, (label, col, (kind, val)) in enumerate(g):
            yy = y + 44 * i
            c.rect((28, yy + 10, 52, yy + 34), fill=col, radius=6)
            c.text((64, yy + 22), label, 14, "sans", UI_TEXT, "lm")
            if kind == "toggle":
                toggle(c, 250, yy + 11, val)
            else:
                c.text((278, yy + 22), val, 13, "sans", UI_MUTED, "rm")
                c.text((292, yy + 22), "›", 18, "sans", (190, 190, 196), "mm")
            if i < len(g) - 1:
                c.line([(64, yy + 44), (304, yy + 44)], (228, 228, 232), 0.8)
        y += 44 * len(g) + 24
    c.text((20, y), "General", 12, "sans", UI_MUTED)
    c.rect((16, y + 20, 304, y + 64), fill=(255, 255, 255), radius=12)
    c.text((28, y + 42), "About phone", 14, "sans", UI_TEXT, "lm")
    c.text((292, y + 42), "›", 18, "sans", (190, 190, 196), "mm")
    path = w.image(c.result(), name, "flat")
    return Sample(name, "ui", ["en"], ["Latn"], chat([img_part(path)], [
        ("Which toggles are switched on in these settings?",
         "Two toggles are on: Mobile data and Dark mode. Airplane mode is off."),
        ("Is Bluetooth enabled, and which Wi-Fi network is the phone using?",
         "Bluetooth is off. The phone is connected to the Wi-Fi network \"HomeNet-5G\". The battery is at 82%."),
    ]))


CODE = [
    "def fibonacci(n: int) -> list[int]:",
    '    """Return the first n Fibonacci numbers."""',
    "    seq = [0, 1]",
    "    while len(seq) < n:",
    "        seq.append(seq[-1] + seq[-2])",
    "    return seq[:n]",
    "",
    "",
    'if __name__ == "__main__":',
    "    print(fibonacci(10))  # demo",
]
PY_KEYWORDS = {"def", "return", "while", "if", "for", "in", "import", "from", "class", "not", "and", "or"}
PY_BUILTINS = {"int", "list", "len", "print", "str", "range"}


def py_tokens(line: str):
    """Tiny Python highlighter: yields (text, colour) pieces."""
    import re

    pat = re.compile(r'(#.*$)|("""[^"]*"""|"[^"]*")|(\b\d+\b)|(\b[A-Za-z_]\w*\b)|(\s+)|(.)')
    prev = ""
    for m in pat.finditer(line):
        tok = m.group(0)
        if m.group(1):
            col = (106, 153, 85)
        elif m.group(2):
            col = (206, 145, 120)
        elif m.group(3):
            col = (181, 206, 168)
        elif m.group(4):
            col = ((86, 156, 214) if tok in PY_KEYWORDS else (78, 201, 176) if tok in PY_BUILTINS
                   else (220, 220, 170) if prev == "def" else (156, 220, 254))
        else:
            col = (212, 212, 212)
        if tok.strip():
            prev = tok
        yield tok, col


def ui_code_editor(w: Writer, seed) -> Sample:
    name = "ui_code_editor"
    c = Canvas(640, 420, (30, 30, 30))
    window(c, "fibonacci.py — project — Code Editor", bar=28, dark=True)
    c.rect((0, 28, 150, 396), fill=(37, 37, 38))
    c.text((12, 40), "EXPLORER", 10, "sans_bold", (190, 190, 190))
    for i, (fname, active) in enumerate([("▾ project", False), ("   fibonacci.py", True), ("   utils.py", False),
                                         ("   README.md", False), ("   requirements.txt", False)]):
        y = 62 + i * 22
        if active:
            c.rect((0, y - 9, 150, y + 11), fill=(55, 55, 61))
        c.text((12, y), fname, 11.5, "sans" if "▾" not in fname else "symbol", (204, 204, 204), "lm")
    c.rect((150, 28, 640, 56), fill=(37, 37, 38))
    c.rect((150, 28, 262, 56), fill=(30, 30, 30))
    c.text((164, 42), "fibonacci.py", 11.5, "sans", (255, 255, 255), "lm")
    c.text((276, 42), "utils.py", 11.5, "sans", (150, 150, 150), "lm")
    size, lh, x0, y0 = 12.5, 21, 196, 70
    cw = c.textlen("M", size, "mono")
    for i, line in enumerate(CODE):
        y = y0 + i * lh
        c.text((184, y), str(i + 1), size, "mono", (133, 133, 133) if i != 4 else (198, 198, 198), "ra")
        x = x0
        for tok, col in py_tokens(line):
            if tok.strip():
                c.text((x, y), tok, size, "mono", col)
            x += cw * len(tok)
    c.rect((x0 + 8 * cw, y0 + 4 * lh - 1, x0 + 8 * cw + 1.5, y0 + 4 * lh + 17), fill=(230, 230, 230))
    c.rect((150, 300, 640, 396), fill=(24, 24, 24))
    c.text((164, 312), "TERMINAL", 10, "sans_bold", (190, 190, 190))
    c.text((164, 336), "$ python fibonacci.py", 12, "mono", (204, 204, 204))
    c.text((164, 356), "█", 12, "mono", (204, 204, 204))
    c.rect((0, 396, 640, 420), fill=(0, 122, 204))
    c.text((12, 408), "main", 11, "sans", (255, 255, 255), "lm")
    c.text((628, 408), "Ln 5, Col 9    Spaces: 4    UTF-8    Python 3.11", 11, "sans", (255, 255, 255), "rm")
    path = w.image(c.result(), name, "flat")
    out = [0, 1]
    while len(out) < 10:
        out.append(out[-1] + out[-2])
    return Sample(name, "ui", ["en"], ["Latn"], chat([img_part(path)], [
        ("What will this program print when the command in the terminal is run?",
         f"It prints the first ten Fibonacci numbers: {out}. The main block calls fibonacci(10), which "
         "starts from [0, 1] and keeps appending the sum of the last two numbers until the list has 10 items."),
        ("Where is the cursor, according to the status bar?",
         "The status bar says Ln 5, Col 9: the cursor is on line 5, at the start of "
         "\"seq.append(seq[-1] + seq[-2])\". The file uses 4 spaces, UTF-8 and Python 3.11."),
    ], sys_prompt="You are a helpful programming assistant."))


def ui_product(w: Writer, seed) -> Sample:
    name = "ui_product_page"
    c = Canvas(640, 480, (255, 255, 255))
    browser(c, "https://shop.trailgear.example/backpacks/trailblazer-40", "Trailblazer 40L – TrailGear")
    c.text((24, 84), "TrailGear", 18, "sans_bold", (20, 110, 80))
    for i, t in enumerate(["Backpacks", "Tents", "Clothing", "Sale"]):
        c.text((200 + i * 90, 94), t, 12.5, "sans", UI_TEXT, "lm")
    c.text((616, 94), "Cart (0)", 12.5, "sans_bold", UI_TEXT, "rm")
    c.line([(0, 114), (640, 114)], UI_LINE, 1)
    c.text((24, 126), "Home › Backpacks › Hiking", 11, "sans", UI_MUTED)
    # product photo: a shaded backpack on a light studio backdrop
    c.rect((24, 150, 284, 450), fill=(240, 242, 244), radius=8)
    c.rect((84, 196, 224, 420), fill=(34, 116, 88), radius=28)
    c.rect((100, 300, 208, 400), fill=(28, 96, 72), radius=14)
    c.line([(108, 330), (200, 330)], (20, 70, 52), 2)
    c.arc((124, 164, 184, 224), 180, 360, (60, 60, 60), 5)
    c.rect((100, 230, 208, 242), fill=(240, 160, 40), radius=4)
    c.shadow((80, 412, 228, 432), 0.25, 4)
    c.text((310, 140), "Trailblazer 40L Hiking Backpack", 18, "sans_bold", UI_TEXT)
    for i in range(5):
        star(c, 318 + i * 18, 180, 8, (245, 166, 35) if i < 4 else (215, 215, 220))
    c.text((410, 180), "4.3 (1,248 reviews)", 12, "sans", UI_MUTED, "lm")
    c.text((310, 204), "$89.99", 26, "sans_bold", (200, 40, 40))
    old_x = 310 + c.textlen("$89.99", 26, "sans_bold") + 12
    c.text((old_x, 216), "$119.99", 14, "sans", UI_MUTED)
    c.line([(old_x, 225), (old_x + c.textlen("$119.99", 14), 225)], UI_MUTED, 1.2)
    c.rect((old_x + c.textlen("$119.99", 14) + 10, 212, old_x + c.textlen("$119.99", 14) + 62, 232),
           fill=(253, 226, 226), radius=4)
    c.text((old_x + c.textlen("$119.99", 14) + 36, 222), "-25%", 11.5, "sans_bold", (200, 40, 40), "mm")
    c.text((310, 256), "Colour: Forest green", 12.5, "sans", UI_TEXT)
    for i, col in enumerate([(34, 116, 88), (40, 60, 110), (60, 60, 64), (190, 80, 40)]):
        c.ellipse((312 + i * 32, 278, 336 + i * 32, 302), fill=col, outline=UI_BLUE if i == 0 else None,
                  width=2)
    c.text((310, 322), "• 40 litres, 1.2 kg", 12.5, "sans", UI_TEXT)
    c.text((310, 342), "• Rain cover included", 12.5, "sans", UI_TEXT)
    c.text((310, 362), "• Free shipping over $50", 12.5, "sans", UI_TEXT)
    button(c, (310, 390, 470, 430), "Add to cart", bg=(20, 110, 80))
    button(c, (480, 390, 616, 430), "♡ Wishlist", bg=(255, 255, 255), fg=UI_TEXT, outline=(196, 200, 208))
    c.text((310, 446), "In stock · ships in 1–2 days", 11.5, "sans", (20, 130, 60))
    path = w.image(c.result(), name, "flat")
    return Sample(name, "ui", ["en"], ["Latn"], chat([img_part(path)], [
        ("How much does this backpack cost, and how big is the discount?",
         "The Trailblazer 40L Hiking Backpack costs $89.99, down from $119.99: $30.00 off, which is the 25% "
         "discount shown on the red badge."),
        ("What rating does it have, and what should I click to buy it?",
         "It is rated 4.3 out of 5 from 1,248 reviews (four of five stars filled). Click the green "
         "\"Add to cart\" button; it is in stock and ships in 1–2 days."),
    ]))


MENU_ITEMS = [("New", "Ctrl+N"), ("New Window", "Ctrl+Shift+N"), ("Open…", "Ctrl+O"), ("Open Recent", "▸"), None,
              ("Save", "Ctrl+S"), ("Save As…", "Ctrl+Shift+S"), ("Export as PDF…", ""), None,
              ("Print…", "Ctrl+P"), None, ("Quit", "Ctrl+Q")]


def ui_menu(w: Writer, seed) -> Sample:
    name = "ui_menu_dropdown"
    c = Canvas(640, 420, (255, 255, 255))
    window(c, "notes.txt — TextPad")
    c.rect((0, 30, 640, 56), fill=(246, 246, 248))
    xs = [12]
    for m in ["File", "Edit", "View", "Format", "Help"]:
        wd = c.textlen(m, 12.5) + 20
        if m == "File":
            c.rect((xs[-1], 32, xs[-1] + wd, 54), fill=(210, 224, 250), radius=4)
        c.text((xs[-1] + 10, 43), m, 12.5, "sans", UI_TEXT, "lm")
        xs.append(xs[-1] + wd)
    c.line([(0, 56), (640, 56)], UI_LINE, 1)
    for i, ln in enumerate(["Shopping list for the weekend:", "- oat milk, coffee beans and honey",
                            "- basil, tomatoes and fresh mozzarella", "",
                            "Call the plumber on Tuesday about the kitchen sink.",
                            "Book train tickets to Lyon for the 14th.", "",
                            "Ideas for Sam's birthday: a board game or a cookbook?"]):
        c.text((24, 70 + i * 22), ln, 13, "mono", (60, 60, 60))
    x0, y = 12, 58
    h = sum(8 if it is None else 26 for it in MENU_ITEMS) + 8
    c.shadow((x0 + 2, y + 4, x0 + 244, y + h + 6), 0.3, 5, rect=True)
    c.rect((x0, y, x0 + 240, y + h), fill=(252, 252, 253), outline=(200, 202, 208), radius=6)
    y += 4
    for it in MENU_ITEMS:
        if it is None:
            c.line([(x0 + 8, y + 4), (x0 + 232, y + 4)], UI_LINE, 1)
            y += 8
            continue
        label, key = it
        if label == "Save As…":
            c.rect((x0 + 4, y, x0 + 236, y + 26), fill=UI_BLUE, radius=4)
        fg = (255, 255, 255) if label == "Save As…" else UI_TEXT
        c.text((x0 + 16, y + 13), label, 12.5, "sans", fg, "lm")
        c.text((x0 + 226, y + 13), key, 12, "symbol" if key == "▸" else "sans",
               fg if label == "Save As…" else UI_MUTED, "rm")
        y += 26
    path = w.image(c.result(), name, "flat")
    n_items = sum(1 for it in MENU_ITEMS if it)
    return Sample(name, "ui", ["en"], ["Latn"], chat([img_part(path)], [
        ("What is the keyboard shortcut for \"Save As…\" in this menu?",
         "Save As… is Ctrl+Shift+S (plain Save is Ctrl+S). It is the highlighted item in the open File menu."),
        ("Which menu is open, and how many commands does it list?",
         f"The File menu of TextPad is open (the document is notes.txt). It lists {n_items} commands: "
         + ", ".join(it[0] for it in MENU_ITEMS if it) + "."),
    ]))


CHAT_MSGS = [("Anna", "Hi! Are we still on for lunch tomorrow?", "10:02"),
             ("me", "Yes! Where do you want to go?", "10:05"),
             ("Anna", "How about the new ramen place on 5th Street?", "10:06"),
             ("me", "Sounds great. 12:30?", "10:07"),
             ("Anna", "Perfect, see you there!", "10:08")]


def ui_chat(w: Writer, seed) -> Sample:
    name = "ui_chat_mobile"
    c = Canvas(320, 640, (255, 255, 255))
    phone_status(c, battery=64)
    c.rect((0, 32, 320, 88), fill=(248, 248, 250))
    c.text((14, 60), "‹", 26, "sans", UI_BLUE, "lm")
    c.ellipse((40, 42, 76, 78), fill=(236, 128, 42))
    c.text((58, 60), "AK", 13, "sans_bold", (255, 255, 255), "mm")
    c.text((86, 52), "Anna Kowalski", 15, "sans_bold", UI_TEXT, "lm")
    c.text((86, 71), "online", 11, "sans", (52, 170, 80), "lm")
    c.line([(0, 88), (320, 88)], UI_LINE, 1)
    c.text((160, 104), "Today", 11, "sans", UI_MUTED, "mm")
    y = 122
    for who, msg, t in CHAT_MSGS:
        lines = wrap(msg, 14, "sans", 190, c)
        bw = max(c.textlen(ln, 14) for ln in lines) + 24
        bh = len(lines) * 20 + 30
        mine = who == "me"
        x0 = 320 - 14 - bw if mine else 14
        c.rect((x0, y, x0 + bw, y + bh), fill=UI_BLUE if mine else (233, 234, 238), radius=14)
        for i, ln in enumerate(lines):
            c.text((x0 + 12, y + 10 + i * 20), ln, 14, "sans", (255, 255, 255) if mine else UI_TEXT)
        c.text((x0 + bw - 10, y + bh - 6), t, 9.5, "sans", (210, 225, 255) if mine else UI_MUTED, "rd")
        y += bh + 10
    c.rect((0, 586, 320, 640), fill=(248, 248, 250))
    c.rect((14, 596, 264, 628), fill=(255, 255, 255), outline=UI_LINE, radius=16)
    c.text((30, 612), "Message", 13, "sans", (150, 150, 160), "lm")
    c.ellipse((274, 596, 306, 628), fill=UI_BLUE)
    c.polygon([(283, 604), (299, 612), (283, 620), (286, 612)], fill=(255, 255, 255))
    path = w.image(c.result(), name, "flat")
    return Sample(name, "ui", ["en"], ["Latn"], chat([img_part(path)], [
        ("Where and when are they meeting?",
         "They are meeting for lunch tomorrow at 12:30, at the new ramen place on 5th Street."),
        ("Who suggested the restaurant, and who proposed the time?",
         "Anna Kowalski suggested the ramen place; the phone's owner proposed 12:30, and Anna agreed "
         "(\"Perfect, see you there!\")."),
    ]))


def ui_dashboard(w: Writer, seed) -> Sample:
    name = "ui_dashboard"
    c = Canvas(640, 420, (244, 246, 250))
    c.rect((0, 0, 150, 420), fill=(24, 30, 48))
    c.text((18, 26), "◆ Shoply", 15, "symbol", (255, 255, 255), "lm")
    for i, item in enumerate(["Overview", "Orders", "Customers", "Products", "Reports", "Settings"]):
        y = 70 + i * 34
        if i == 0:
            c.rect((8, y - 13, 142, y + 13), fill=(50, 64, 104), radius=6)
        c.text((24, y), item, 12.5, "sans", (255, 255, 255) if i == 0 else (170, 178, 196), "lm")
    c.text((170, 26), "Overview", 18, "sans_bold", UI_TEXT, "lm")
    c.text((624, 26), "Last 30 days ▾", 11.5, "symbol", UI_MUTED, "rm")
    cards = [("Revenue", "$48,250", "+12.4%", True), ("Orders", "1,327", "+3.1%", True),
             ("New customers", "214", "-2.6%", False), ("Avg. order", "$36.36", "+8.9%", True)]
    for i, (label, val, delta, up) in enumerate(cards):
        x = 166 + i * 116
        c.rect((x, 48, x + 108, 124), fill=(255, 255, 255), outline=UI_LINE, radius=8)
        c.text((x + 10, 60), label, 10.5, "sans", UI_MUTED)
        c.text((x + 10, 78), val, 17, "sans_bold", UI_TEXT)
        c.text((x + 10, 104), delta, 11, "sans_bold", (22, 150, 70) if up else (215, 50, 50))
    c.rect((166, 136, 624, 292), fill=(255, 255, 255), outline=UI_LINE, radius=8)
    c.text((178, 148), "Revenue per week", 12, "sans_bold", UI_TEXT)
    weekly = [9.8, 11.2, 12.9, 14.3]
    for i, v in enumerate(weekly):
        x = 210 + i * 100
        top = 276 - v * 7.5
        c.rect((x, top, x + 56, 276), fill=(99, 132, 240), radius=3)
        c.text((x + 28, top - 4), f"${v:.1f}k", 10.5, "sans_bold", UI_TEXT, "md")
        c.text((x + 28, 280), f"Week {i + 1}", 10, "sans", UI_MUTED, "ma")
    c.rect((166, 304, 624, 408), fill=(255, 255, 255), outline=UI_LINE, radius=8)
    c.text((178, 314), "Recent orders", 12, "sans_bold", UI_TEXT)
    for i, (oid, cust, amt, st, col) in enumerate([("#10482", "L. Moreau", "$54.20", "Shipped", (22, 150, 70)),
                                                   ("#10481", "K. Tanaka", "$23.90", "Pending", (220, 140, 20)),
                                                   ("#10480", "S. Okafor", "$112.00", "Shipped", (22, 150, 70))]):
        y = 344 + i * 22
        c.text((178, y), oid, 11.5, "mono", UI_TEXT, "lm")
        c.text((260, y), cust, 11.5, "sans", UI_TEXT, "lm")
        c.text((440, y), amt, 11.5, "sans", UI_TEXT, "rm")
        c.text((610, y), st, 11.5, "sans_bold", col, "rm")
    path = w.image(c.result(), name, "flat")
    total = sum(weekly)
    return Sample(name, "ui", ["en"], ["Latn"], chat([img_part(path)], [
        ("Which metric went down over the last 30 days, and by how much?",
         "Only New customers went down: 214, which is -2.6%. Revenue ($48,250, +12.4%), Orders (1,327, +3.1%) "
         "and Avg. order ($36.36, +8.9%) all went up."),
        ("Which recent order is still pending?",
         "Order #10481 from K. Tanaka, for $23.90, is pending; the other two (#10482 and #10480) have shipped."),
        ("Is weekly revenue growing?",
         "Yes. The weekly bars rise every week: " + ", ".join(f"${v:.1f}k" for v in weekly)
         + f", about ${total:.1f}k in the four weeks shown."),
    ]))


FILES = [("budget_2023.xlsx", "48 KB", "12 Jan 2024"), ("meeting_notes.docx", "22 KB", "3 Mar 2024"),
         ("photo_0912.jpg", "3.1 MB", "9 Sep 2023"), ("project_plan.pdf", "1.4 MB", "18 Feb 2024"),
         ("todo.txt", "1 KB", "Today")]


def ui_file_dialog(w: Writer, seed) -> Sample:
    name = "ui_file_delete_dialog"
    c = Canvas(640, 420, (255, 255, 255))
    window(c, "Documents")
    c.rect((0, 30, 150, 420), fill=(243, 244, 247))
    for i, place in enumerate(["Home", "Desktop", "Documents", "Downloads", "Pictures", "Trash"]):
        y = 52 + i * 28
        if place == "Documents":
            c.rect((6, y - 11, 144, y + 11), fill=(218, 228, 248), radius=5)
        c.text((20, y), place, 12.5, "sans", UI_TEXT, "lm")
    c.rect((150, 30, 640, 56), fill=(250, 250, 251))
    for x, hdr in [(166, "Name"), (420, "Size"), (500, "Modified")]:
        c.text((x, 43), hdr, 11.5, "sans_bold", UI_MUTED, "lm")
    for i, (fname, size, mod) in enumerate(FILES):
        y = 74 + i * 28
        if i == 0:
            c.rect((150, y - 13, 640, y + 13), fill=(218, 228, 248))
        c.rect((166, y - 8, 178, y + 8), fill=[(40, 150, 80), (40, 90, 200), (230, 140, 30), (210, 50, 50),
                                               (130, 130, 140)][i], radius=2)
        c.text((188, y), fname, 12.5, "sans", UI_TEXT, "lm")
        c.text((420, y), size, 12, "sans", UI_MUTED, "lm")
        c.text((500, y), mod, 12, "sans", UI_MUTED, "lm")
    c.rect((0, 0, 640, 420), fill=(0, 0, 0, 90))
    c.shadow((164, 128, 484, 308), 0.45, 8, rect=True)
    c.rect((160, 120, 480, 300), fill=(255, 255, 255), radius=12)
    c.ellipse((180, 142, 212, 174), fill=(252, 228, 228))
    c.text((196, 158), "!", 18, "sans_bold", (210, 50, 50), "mm")
    c.text((226, 158), "Move to Trash?", 16, "sans_bold", UI_TEXT, "lm")
    f = Flow(c, margin=180, y=190, x1=460)
    f.para("“budget_2023.xlsx” will be moved to the Trash. You can restore it from the Trash later.", 12.5,
           fill=(70, 74, 84))
    button(c, (272, 250, 350, 282), "Cancel", bg=(238, 239, 242), fg=UI_TEXT, size=12.5)
    button(c, (358, 250, 462, 282), "Move to Trash", bg=(210, 50, 50), size=12.5)
    path = w.image(c.result(), name, "flat")
    return Sample(name, "ui", ["en"], ["Latn"], chat([img_part(path)], [
        ("Which file is about to be deleted, and what are my options?",
         "The dialog asks whether to move “budget_2023.xlsx” (48 KB, modified 12 Jan 2024) to the Trash. "
         "You can click \"Cancel\" to keep it, or the red \"Move to Trash\" button to delete it; "
         "it can still be restored from the Trash later."),
        ("How many files are in this folder, and which is the largest?",
         f"The Documents folder lists {len(FILES)} files; the largest is photo_0912.jpg at 3.1 MB."),
    ]))


TERMINAL = [
    ("$ ", "git status", "prompt"),
    ("On branch feature/checkout", None, "out"),
    ("Your branch is ahead of 'origin/feature/checkout' by 2 commits.", None, "out"),
    ('  (use "git push" to publish your local commits)', None, "out"),
    ("", None, "out"),
    ("Changes not staged for commit:", None, "out"),
    ('  (use "git add <file>..." to update what will be committed)', None, "out"),
    ("        modified:   src/cart.py", None, "red"),
    ("        modified:   tests/test_cart.py", None, "red"),
    ("", None, "out"),
    ("Untracked files:", None, "out"),
    ('  (use "git add <file>..." to include in what will be committed)', None, "out"),
    ("        src/payment.py", None, "red"),
    ("", None, "out"),
    ('no changes added to commit (use "git add" and/or "git commit -a")', None, "out"),
    ("$ ", "", "prompt"),
]


def ui_terminal(w: Writer, seed) -> Sample:
    name = "ui_terminal_git"
    c = Canvas(640, 400, (23, 25, 33))
    window(c, "dev@laptop: ~/shop-api", dark=True)
    y = 44
    for text, cmd, kind in TERMINAL:
        if kind == "prompt":
            c.text((12, y), "dev@laptop", 11.5, "mono_bold", (120, 220, 120))
            x = 12 + c.textlen("dev@laptop", 11.5, "mono_bold")
            c.text((x, y), ":~/shop-api", 11.5, "mono_bold", (110, 160, 255))
            x += c.textlen(":~/shop-api", 11.5, "mono_bold")
            c.text((x, y), text + cmd, 11.5, "mono", (230, 230, 230))
            if not cmd:
                c.rect((x + c.textlen("$ ", 11.5, "mono"), y, x + c.textlen("$ ", 11.5, "mono") + 7, y + 15),
                       fill=(230, 230, 230))
        else:
            c.text((12, y), text, 11.5, "mono", (235, 90, 90) if kind == "red" else (220, 220, 220))
        y += 21
    path = w.image(c.result(), name, "flat")
    return Sample(name, "ui", ["en"], ["Latn"], chat([img_part(path)], [
        ("Which branch am I on, and what has changed?",
         "You are on branch feature/checkout, 2 commits ahead of origin/feature/checkout. Two tracked files are "
         "modified but not staged: src/cart.py and tests/test_cart.py. One new file, src/payment.py, is untracked."),
        ("How do I commit all of this and publish it?",
         "Stage everything, commit, then push:\n\ngit add src/cart.py tests/test_cart.py src/payment.py\n"
         "git commit -m \"Add payment step to checkout\"\ngit push\n\n`git add -A` would also stage all three "
         "files. The push will publish the 2 earlier commits as well."),
    ], sys_prompt="You are a helpful programming assistant."))


UIS = [ui_login, ui_settings, ui_code_editor, ui_product, ui_menu, ui_chat, ui_dashboard, ui_file_dialog, ui_terminal]


# ========================================================================= scenes


def blend(base: np.ndarray, color, mask: np.ndarray) -> np.ndarray:
    """base * (1 - mask) + color * mask; color is an RGB triple or an array like base."""
    m = mask[..., None] if mask.ndim == 2 else mask
    return base * (1 - m) + np.asarray(color, np.float32) * m


def ridge_mask(h, w, ridge: np.ndarray) -> np.ndarray:
    """1 below the ridge line (y > ridge[x]), anti-aliased over one pixel."""
    yy = np.arange(h, dtype=np.float32)[:, None]
    return np.clip(yy - ridge[None, :], 0, 1)


def glow(h, w, cx, cy, radius, strength, color=(255, 220, 160)) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.hypot(xx - cx, yy - cy)
    return np.exp(-d / radius)[..., None] * strength * (np.array(color, np.float32) / 255)


def sky_clouds(rng, a, top, bottom, color=(255, 255, 255), cover=0.58, scale=90, stretch=3.0, alpha=0.85):
    """Soft cumulus/stratus clouds between rows top..bottom of array a."""
    h, w = a.shape[:2]
    n = noise2d(rng, h, w, scale=scale, scale_x=scale * stretch, octaves=5)
    m = np.clip((n - cover) * 4, 0, 1) * alpha
    fade = np.clip((np.arange(h)[:, None] - top) / max(1, (bottom - top) * 0.2), 0, 1) * \
        np.clip((bottom - np.arange(h)[:, None]) / max(1, (bottom - top) * 0.4), 0, 1)
    shade = (0.86 + 0.14 * (1 - n))[..., None]
    return blend(a, np.array(color, np.float32) * shade, m * fade)


def scene_mountains(w: Writer, seed) -> Sample:
    name = "scene_mountain_sunset"
    rng = rng_for(seed, name)
    W, H, S = 640, 427, 2
    h, wd = H * S, W * S
    horizon = int(h * 0.64)
    a = gradient(h, wd, [(0, (38, 52, 112)), (0.3, (112, 92, 150)), (0.5, (232, 132, 96)),
                         (0.64, (255, 196, 120)), (1, (255, 196, 120))])
    sx, sy = wd * 0.64, horizon - 178 * S
    a += glow(h, wd, sx, sy, 120 * S, 150)
    yy, xx = np.mgrid[0:h, 0:wd].astype(np.float32)
    a = blend(a, (255, 244, 214), np.clip(24 * S - np.hypot(xx - sx, yy - sy), 0, 1))
    a = sky_clouds(rng, a, 0, horizon * 0.6, color=(250, 170, 150), cover=0.62, scale=30 * S, stretch=6)
    layers = [(horizon - 150 * S, 100 * S, (176, 128, 150), (206, 160, 172)),
              (horizon - 105 * S, 80 * S, (112, 80, 112), (144, 106, 136)),
              (horizon - 58 * S, 50 * S, (50, 42, 64), (78, 62, 88))]
    for i, (base, amp, dark, light) in enumerate(layers):
        r = noise1d(rng, wd, scale=(260 - 60 * i) * S, octaves=6)
        ridge = base + amp * (1 - (r - r.min()) / (r.max() - r.min())) ** 1.4
        tex = noise2d(rng, h, wd, scale=(40 + 20 * i) * S, octaves=5)
        col = tint(tex, dark, light) * gradient(h, wd, [(0, (1.08,) * 3), (1, (0.8,) * 3)])
        m = ridge_mask(h, wd, ridge) * (yy < horizon)
        a = blend(a, col, m)
    # lake: mirror the scene above the horizon, with ripples and a darker blue tint
    depth = np.clip(yy - horizon, 0, None)
    ripple = (noise2d(rng, h, wd, scale=3 * S, scale_x=80 * S, octaves=3) - 0.5) * (4 + depth * 0.08) * S
    src_y = np.clip(horizon - 1 - depth, 0, h - 1).astype(int)
    src_x = np.clip(xx + ripple, 0, wd - 1).astype(int)
    refl = a[src_y, src_x] * 0.62 + np.array([14, 26, 48], np.float32)
    a = np.where((yy >= horizon)[..., None], refl, a)
    sparkle = (noise2d(rng, h, wd, scale=2 * S, scale_x=30 * S, octaves=2) > 0.8) * (yy > horizon) * \
        np.exp(-np.abs(xx - sx) / (50 * S))
    a = blend(a, (255, 230, 190), sparkle * 0.7)
    c = Canvas(W, H, a, ss=S)
    path = w.image(photo_finish(c.result(), rng, grain=2.5, vignette=0.3), name)
    return Sample(name, "scene", ["en"], ["Latn"], chat([img_part(path)], [
        ("Describe this picture.",
         "A mountain lake at sunset. A pale sun, partly veiled by thin orange and pink clouds, hangs in a "
         "purple sky above three ranges of mountains that fade from dark purple in front to hazy mauve in the "
         "distance. The calm lake in the foreground mirrors the mountains, and the sunlight glitters on it."),
        ("What time of day is it?",
         "Early evening, around sunset (it could also be sunrise): the sun is low above the mountains, the "
         "light is warm, the clouds are lit orange and pink, and the sky darkens towards the top."),
    ]))


def tree(c: Canvas, rng, x, base_y, size):
    c.shadow((x - size * 0.9, base_y - size * 0.08, x + size * 1.1, base_y + size * 0.12), 0.35, size * 0.06)
    c.rect((x - size * 0.07, base_y - size * 0.9, x + size * 0.07, base_y), fill=(92, 62, 38))
    greens = [(44, 96, 40), (58, 118, 48), (76, 140, 58), (96, 160, 70)]
    for k in range(9):
        dx, dy = rng.uniform(-0.42, 0.42) * size, rng.uniform(-0.5, 0.15) * size
        rr = size * rng.uniform(0.28, 0.4)
        cy = base_y - size * 1.05 + dy
        col = greens[min(3, int((0.5 - dy / size) * 2 + k % 2))]
        c.ellipse((x + dx - rr, cy - rr, x + dx + rr, cy + rr), fill=col)
    c.ellipse((x - size * 0.25, base_y - size * 1.55, x + size * 0.05, base_y - size * 1.3), fill=(120, 180, 84, 160))


def scene_meadow(w: Writer, seed) -> Sample:
    name = "scene_meadow_trees"
    rng = rng_for(seed, name)
    W, H, S = 640, 427, 2
    h, wd = H * S, W * S
    a = gradient(h, wd, [(0, (74, 130, 210)), (0.5, (160, 200, 240)), (1, (200, 225, 245))])
    a = sky_clouds(rng, a, 0, h * 0.5, cover=0.55, scale=60 * S, stretch=2.5)
    for base, amp, dark, light in [(0.48, 40, (96, 140, 110), (130, 170, 130)),
                                   (0.58, 50, (70, 130, 60), (110, 170, 80))]:
        r = noise1d(rng, wd, scale=400 * S, octaves=4)
        ridge = h * base + amp * S * r
        tex = noise2d(rng, h, wd, scale=30 * S, octaves=5)
        a = blend(a, tint(tex, dark, light), ridge_mask(h, wd, ridge))
    grass = noise2d(rng, h, wd, scale=2 * S, scale_x=1 * S, octaves=2) * 0.5 + \
        noise2d(rng, h, wd, scale=50 * S, octaves=3) * 0.5
    front = ridge_mask(h, wd, h * 0.68 + 14 * S * noise1d(rng, wd, 500 * S, 3))
    a = blend(a, tint(grass, (60, 118, 40), (128, 180, 72)), front)
    c = Canvas(W, H, a, ss=S)
    n_trees = 5
    xs = [70, 190, 330, 450, 565]
    for i, x in enumerate(xs[:n_trees]):
        base_y = 300 + (i % 2) * 26 + rng.uniform(-6, 6)
        tree(c, rng, x + rng.uniform(-15, 15), base_y, 70 + (i % 2) * 14)
    for _ in range(220):
        x, y = rng.uniform(0, W), rng.uniform(350, H)
        col = [(255, 255, 255), (250, 220, 60), (240, 140, 180)][int(rng.integers(0, 3))]
        rr = rng.uniform(1.0, 2.2)
        c.ellipse((x - rr, y - rr, x + rr, y + rr), fill=col)
    path = w.image(photo_finish(c.result(), rng, grain=2.5, vignette=0.25), name)
    return Sample(name, "scene", ["en"], ["Latn"], chat([img_part(path)], [
        ("How many trees are in this picture?",
         f"There are {n_trees} trees, standing in a row across a green meadow."),
        ("Describe the rest of the landscape.",
         "Behind the trees, rolling green hills fade into the distance under a blue sky with white clouds. "
         "The grass in the foreground is dotted with small white, yellow and pink flowers, and each tree casts "
         "a soft shadow on the ground. It looks like a sunny summer day."),
    ]))


def scene_beach(w: Writer, seed) -> Sample:
    name = "scene_beach"
    rng = rng_for(seed, name)
    W, H, S = 640, 427, 2
    h, wd = H * S, W * S
    yy, xx = np.mgrid[0:h, 0:wd].astype(np.float32)
    horizon, shore = int(h * 0.44), h * 0.66
    a = gradient(h, wd, [(0, (60, 140, 220)), (0.44, (170, 215, 240)), (1, (170, 215, 240))])
    a = sky_clouds(rng, a, 0, horizon * 0.9, cover=0.64, scale=40 * S, stretch=4)
    sea = gradient(h, wd, [(0, (20, 70, 130)), (0.44, (20, 80, 140)), (0.66, (40, 170, 180)), (1, (60, 190, 190))])
    waves = noise2d(rng, h, wd, scale=2 * S, scale_x=40 * S, octaves=3)
    sea += (waves[..., None] - 0.5) * 40 * np.clip((yy - horizon) / (shore - horizon), 0.2, 1)[..., None]
    a = np.where((yy >= horizon)[..., None], sea, a)
    shore_line = shore + 8 * S * noise1d(rng, wd, 300 * S, 4)
    sand = tint(noise2d(rng, h, wd, scale=40 * S, octaves=5), (206, 180, 136), (240, 222, 180))
    sand *= (0.96 + 0.04 * np.sin(yy * 0.25 + noise2d(rng, h, wd, 60 * S, 2) * 8))[..., None]
    wet = np.clip(1 - (yy - shore_line[None, :]) / (18 * S), 0, 1)[..., None]
    sand = sand * (1 - 0.25 * wet)
    a = blend(a, sand, ridge_mask(h, wd, shore_line))
    foam = np.clip(1 - np.abs(yy - shore_line[None, :] + 2 * S) / (3 * S), 0, 1) * \
        (noise2d(rng, h, wd, scale=2 * S, scale_x=10 * S, octaves=2) > 0.35)
    a = blend(a, (250, 252, 255), foam * 0.9)
    c = Canvas(W, H, a, ss=S)
    # towel, umbrella, ball
    c.shadow((150, 352, 330, 392), 0.3, 6)
    c.polygon([(170, 340), (300, 336), (320, 380), (160, 386)], fill=(40, 90, 190))
    for k in range(1, 4):
        t = k / 4
        c.line([(170 + (160 - 170) * t, 340 + 46 * t), (300 + 20 * t, 336 + 44 * t)], (240, 240, 250), 3)
    c.shadow((150, 300, 330, 340), 0.25, 10)
    c.line([(230, 318), (226, 190)], (230, 230, 230), 4)
    cx, cy, r = 228, 200, 95
    for k in range(8):
        c.pieslice((cx - r, cy - r * 0.55, cx + r, cy + r * 0.55), 180 + k * 22.5, 180 + (k + 1) * 22.5,
                   fill=(220, 40, 40) if k % 2 == 0 else (250, 250, 245))
    c.sphere(420, 350, 22, (250, 210, 40))
    path = w.image(photo_finish(c.result(), rng, grain=2.5, vignette=0.22), name)
    return Sample(name, "scene", ["en"], ["Latn"], chat([img_part(path)], [
        ("What can you see on the beach?",
         "A red-and-white striped beach umbrella, a blue towel with white stripes lying beside it, and a "
         "yellow ball on the sand to the right."),
        ("What is the weather like?",
         "Sunny and pleasant: the sky is bright blue with a few white clouds and the turquoise sea is calm, "
         "with small waves foaming along the shore."),
    ]))


def scene_room(w: Writer, seed) -> Sample:
    name = "scene_living_room"
    rng = rng_for(seed, name)
    W, H, S = 640, 427, 2
    h, wd = H * S, W * S
    yy, xx = np.mgrid[0:h, 0:wd].astype(np.float32)
    floor_y = int(h * 0.66)
    wall = tint(noise2d(rng, h, wd, scale=80 * S, octaves=4), (214, 196, 170), (236, 222, 198))
    wall *= (0.97 + 0.03 * (np.sin(xx / (6 * S)) > 0.6))[..., None]
    lamp_x, lamp_y = 0.70 * wd, 0.44 * h
    wall += glow(h, wd, lamp_x, lamp_y, 110 * S, 70)
    # perspective wood floor: planks converge to a vanishing point above the room
    vx, vy = wd * 0.5, floor_y - h * 0.9
    u = (xx - vx) / (yy - vy) * h * 0.6
    v = 1e4 / (yy - vy)
    plank = np.floor(u / (34 * S))
    grain = np.sin(v * 0.9 + np.sin(plank * 12.9898) * 40 + noise2d(rng, h, wd, 20 * S, 3) * 6)
    floor = tint(0.5 + 0.25 * grain, (120, 74, 40), (176, 118, 70)) * (0.9 + 0.2 * ((plank * 0.618) % 1))[..., None]
    floor[np.abs((u / (34 * S)) - np.round(u / (34 * S))) < 0.03] *= 0.6
    floor *= gradient(h, wd, [(0, (0.7,) * 3), (1, (1.05,) * 3)])
    a = np.where((yy >= floor_y)[..., None], floor, wall)
    c = Canvas(W, H, a, ss=S)
    c.rect((0, floor_y / S - 3, W, floor_y / S + 5), fill=(245, 242, 235))
    # window with sky and a hill
    wx0, wy0, wx1, wy1 = 60, 60, 230, 230
    win = gradient((wy1 - wy0) * S, (wx1 - wx0) * S, [(0, (90, 150, 220)), (1, (190, 220, 245))])
    hill = ridge_mask(win.shape[0], win.shape[1], win.shape[0] * 0.7 + 20 * S * noise1d(rng, win.shape[1], 200 * S))
    win = blend(win, (90, 150, 70), hill)
    c.img.paste(to_image(win), (wx0 * S, wy0 * S))
    c.rect((wx0, wy0, wx1, wy1), outline=(250, 250, 248), width=8)
    c.line([((wx0 + wx1) / 2, wy0), ((wx0 + wx1) / 2, wy1)], (250, 250, 248), 6)
    c.line([(wx0, (wy0 + wy1) / 2), (wx1, (wy0 + wy1) / 2)], (250, 250, 248), 6)
    c.rect((wx0 - 10, wy1, wx1 + 10, wy1 + 10), fill=(240, 238, 232))
    # framed picture
    c.rect((300, 70, 420, 150), fill=(70, 48, 30))
    c.rect((308, 78, 412, 142), fill=(200, 220, 235))
    c.polygon([(308, 142), (340, 100), (370, 130), (390, 108), (412, 142)], fill=(90, 120, 90))
    c.ellipse((384, 84, 398, 98), fill=(250, 210, 90))
    # table with a lamp
    c.shadow((360, 350, 560, 372), 0.35, 6)
    c.polygon([(370, 258), (550, 258), (566, 274), (354, 274)], fill=(120, 78, 46))
    c.rect((354, 274, 566, 282), fill=(96, 60, 34))
    for x in (366, 546):
        c.rect((x, 282, x + 8, 360), fill=(96, 60, 34))
    c.ellipse((430, 250, 470, 262), fill=(60, 60, 64))
    c.rect((447, 190, 453, 256), fill=(70, 70, 74))
    c.polygon([(424, 196), (476, 196), (462, 160), (438, 160)], fill=(250, 232, 180))
    # potted plant
    c.polygon([(86, 350), (134, 350), (126, 398), (94, 398)], fill=(186, 98, 60))
    for k in range(11):
        ang = math.radians(200 + k * 14)
        lx, ly = 110 + math.cos(ang) * 48, 340 + math.sin(ang) * 60
        c.line([(110, 350), (lx, ly)], (50, 110, 50), 2)
        c.ellipse((lx - 11, ly - 6, lx + 11, ly + 6), fill=(60 + 6 * k, 130 + 3 * k, 60))
    path = w.image(photo_finish(c.result(), rng, grain=3.0, vignette=0.3), name)
    return Sample(name, "scene", ["en"], ["Latn"], chat([img_part(path)], [
        ("What objects are in this room?",
         "On the left wall there is a window showing a blue sky and a green hill, with a potted plant on the "
         "floor below it. In the middle of the wall hangs a framed landscape picture. On the right a wooden "
         "table stands on a plank floor, with a lamp on it."),
        ("Is the lamp switched on?",
         "Yes. Its shade is bright and it casts a warm glow on the wall behind the table."),
    ]))


def still_life(rng, W, H, colors=((210, 40, 40), (60, 170, 70), (40, 90, 210))) -> Image.Image:
    """Three balls on a wooden table: medium (left), large (middle), small (right)."""
    S = 2
    h, wd = H * S, W * S
    table_y = int(h * 0.58)
    back = gradient(h, wd, [(0, (90, 100, 120)), (0.58, (170, 176, 186)), (1, (170, 176, 186))])
    back += glow(h, wd, wd * 0.3, h * 0.2, 200 * S * W / 640, 40, (255, 255, 255))
    top = wood(rng, h, wd, base=(176, 124, 80), dark=(126, 84, 50), planks=0)
    top *= gradient(h, wd, [(0, (0.7,) * 3), (0.58, (0.8,) * 3), (1, (1.05,) * 3)])
    a = np.where((np.arange(h)[:, None, None] >= table_y), top, back)
    c = Canvas(W, H, a, ss=S)
    k = W / 640
    ty = table_y / S
    for (cx, r), col in zip([(170 * k, 62 * k), (330 * k, 88 * k), (480 * k, 44 * k)], colors):
        c.shadow((cx - r * 0.7, ty + r * 0.95, cx + r * 1.6, ty + r * 1.35), 0.45, 6 * k)
        c.sphere(cx, ty + r * 1.15 - r, r, col)
    return photo_finish(c.result(), rng, grain=2.5, vignette=0.25)


def scene_still_life(w: Writer, seed) -> Sample:
    name = "scene_still_life_balls"
    rng = rng_for(seed, name)
    path = w.image(still_life(rng, 640, 427), name)
    return Sample(name, "scene", ["en"], ["Latn"], chat([img_part(path)], [
        ("What colour is the largest ball, and what is on each side of it?",
         "The largest ball is green and sits in the middle. To its left is a medium-sized red ball, and to "
         "its right a small blue ball."),
        ("Where is the light coming from?",
         "From the upper left: each ball has its bright highlight on the upper-left side and casts its shadow "
         "to the lower right on the wooden table."),
    ]))


def scene_city_night(w: Writer, seed) -> Sample:
    name = "scene_city_night"
    rng = rng_for(seed, name)
    W, H, S = 640, 427, 2
    h, wd = H * S, W * S
    a = gradient(h, wd, [(0, (8, 12, 36)), (0.6, (40, 32, 80)), (0.8, (90, 60, 100)), (1, (90, 60, 100))])
    for _ in range(200):
        x, y = int(rng.uniform(0, wd - 2)), int(rng.uniform(0, h * 0.55))
        b = rng.uniform(0.4, 1.0)
        a[y:y + 2, x:x + 2] = a[y:y + 2, x:x + 2] * (1 - b) + 255 * b
    mx, my = wd * 0.8, h * 0.16
    a += glow(h, wd, mx, my, 30 * S, 60, (220, 225, 255))
    yy, xx = np.mgrid[0:h, 0:wd].astype(np.float32)
    moon = np.clip(26 * S - np.hypot(xx - mx, yy - my), 0, 1) * np.clip(np.hypot(xx - mx - 12 * S, yy - my + 6 * S)
                                                                     - 24 * S, 0, 1)
    a = blend(a, (246, 240, 210), moon)
    c = Canvas(W, H, a, ss=S)
    x = -10.0
    ground = 370
    buildings = []
    while x < W:
        bw = rng.uniform(34, 70)
        top = rng.uniform(120, 300)
        buildings.append((x, top, bw))
        x += bw + rng.uniform(-4, 6)
    for bx, top, bw in buildings:
        shade = rng.uniform(22, 44)
        c.rect((bx, top, bx + bw, ground), fill=(int(shade), int(shade + 4), int(shade + 18)))
        for wy in np.arange(top + 8, ground - 10, 14):
            for wx in np.arange(bx + 5, bx + bw - 8, 10):
                if rng.random() < 0.38:
                    col = (255, int(rng.uniform(190, 230)), int(rng.uniform(90, 150)))
                    c.rect((wx, wy, wx + 5, wy + 7), fill=col)
        if rng.random() < 0.25:
            c.line([(bx + bw / 2, top), (bx + bw / 2, top - 26)], (60, 60, 70), 2)
            c.ellipse((bx + bw / 2 - 2.5, top - 29, bx + bw / 2 + 2.5, top - 24), fill=(255, 60, 60))
    c.rect((0, ground, W, H), fill=(24, 24, 32))
    c.line([(0, ground + 28), (W, ground + 28)], (200, 180, 90), 2)
    for lx in range(40, W, 120):
        c.line([(lx, ground + 2), (lx, ground - 44)], (70, 70, 80), 2.5)
    arr = c.array()
    for lx in range(40, W, 120):
        arr += glow(arr.shape[0], arr.shape[1], lx * S, (ground - 46) * S, 14 * S, 180, (255, 200, 120))
    c.set_array(arr)
    path = w.image(photo_finish(c.result(), rng, grain=4.0, vignette=0.3), name)
    return Sample(name, "scene", ["en"], ["Latn"], chat([img_part(path)], [
        ("Was this picture taken during the day or at night? How can you tell?",
         "At night. The sky is dark blue and purple with stars and a crescent moon at the top right, the "
         "skyscrapers are dark silhouettes with many lit yellow windows, and the street lamps are glowing."),
        ("What is in the foreground?",
         "A dark street with a yellow line along it and a row of glowing street lamps in front of the buildings."),
    ]))


def pine(c: Canvas, x, base_y, size):
    c.rect((x - size * 0.06, base_y - size * 0.25, x + size * 0.06, base_y), fill=(80, 56, 40))
    for k in range(3):
        y0 = base_y - size * (0.2 + 0.32 * k)
        half = size * (0.5 - 0.12 * k)
        c.polygon([(x - half, y0), (x + half, y0), (x, y0 - size * 0.5)], fill=(30, 80, 52))
        c.polygon([(x - half * 0.55, y0 - size * 0.22), (x, y0 - size * 0.5), (x + half * 0.55, y0 - size * 0.22),
                   (x, y0 - size * 0.3)], fill=(240, 246, 252))


def scene_winter(w: Writer, seed) -> Sample:
    name = "scene_winter_house"
    rng = rng_for(seed, name)
    W, H, S = 640, 427, 2
    h, wd = H * S, W * S
    yy, _ = np.mgrid[0:h, 0:wd].astype(np.float32)
    a = gradient(h, wd, [(0, (150, 170, 200)), (0.55, (214, 222, 234)), (1, (214, 222, 234))])
    a = sky_clouds(rng, a, 0, h * 0.5, color=(236, 240, 246), cover=0.45, scale=70 * S, stretch=3, alpha=0.6)
    r = noise1d(rng, wd, 300 * S, 4)
    a = blend(a, tint(noise2d(rng, h, wd, 40 * S, 4), (196, 208, 226), (232, 238, 246)),
              ridge_mask(h, wd, h * 0.55 + 20 * S * r))
    snow = tint(noise2d(rng, h, wd, 60 * S, 5), (214, 224, 240), (252, 252, 255))
    a = blend(a, snow, ridge_mask(h, wd, h * 0.66 + 8 * S * noise1d(rng, wd, 400 * S, 3)))
    c = Canvas(W, H, a, ss=S)
    c.shadow((220, 300, 470, 326), 0.3, 8)
    c.rect((240, 200, 420, 312), fill=(170, 40, 36))
    for y in range(208, 312, 10):
        c.line([(240, y), (420, y)], (140, 30, 28), 1)
    c.rect((330, 120, 352, 180), fill=(120, 70, 60))
    c.rect((326, 114, 356, 122), fill=(245, 248, 252))
    for k in range(4):
        rr = 8 + k * 5
        c.ellipse((340 - rr + k * 10, 100 - k * 22 - rr, 340 + rr + k * 10, 100 - k * 22 + rr),
                  fill=(200, 204, 212, 150 - k * 30))
    c.polygon([(226, 204), (330, 140), (434, 204)], fill=(70, 50, 44))
    c.polygon([(222, 206), (330, 134), (438, 206), (430, 196), (330, 150), (230, 196)], fill=(246, 249, 253))
    c.rect((316, 248, 346, 312), fill=(90, 56, 36))
    for x0 in (262, 370):
        c.rect((x0, 232, x0 + 32, 262), fill=(255, 214, 120))
        c.line([(x0 + 16, 232), (x0 + 16, 262)], (240, 240, 240), 2)
        c.rect((x0, 232, x0 + 32, 262), outline=(240, 240, 240), width=2)
    n_pines = 3
    for x, by, sz in [(110, 318, 150), (510, 322, 170), (590, 300, 110)][:n_pines]:
        c.shadow((x - sz * 0.4, by - 8, x + sz * 0.6, by + 10), 0.25, 5)
        pine(c, x, by, sz)
    for _ in range(420):
        x, y = rng.uniform(0, W), rng.uniform(0, H)
        rr = rng.uniform(0.6, 2.2)
        c.ellipse((x - rr, y - rr, x + rr, y + rr), fill=(255, 255, 255, int(rng.uniform(150, 250))))
    path = w.image(photo_finish(c.result(), rng, grain=2.5, vignette=0.2), name)
    return Sample(name, "scene", ["en"], ["Latn"], chat([img_part(path)], [
        ("What season is shown, and how many pine trees are there?",
         f"Winter: the ground and the roof are covered in snow and snowflakes are falling. There are "
         f"{n_pines} snowy pine trees, one on the left of the house and two on the right."),
        ("Describe the house.",
         "A small red wooden house with a snow-covered roof, a brick chimney with grey smoke rising from it, "
         "a brown front door and two warmly lit yellow windows."),
    ]))


def scene_fruit_bowl(w: Writer, seed) -> Sample:
    name = "scene_fruit_bowl"
    rng = rng_for(seed, name)
    W, H, S = 576, 432, 2
    h, wd = H * S, W * S
    table_y = int(h * 0.6)
    back = gradient(h, wd, [(0, (140, 110, 90)), (0.6, (214, 190, 160)), (1, (214, 190, 160))])
    top = tint(noise2d(rng, h, wd, 30 * S, 5), (220, 216, 206), (246, 244, 238))  # linen tablecloth
    top *= (0.97 + 0.03 * np.sin(np.arange(wd) / 3.0))[None, :, None]
    a = np.where((np.arange(h)[:, None, None] >= table_y), top, back)
    c = Canvas(W, H, a, ss=S)
    cx, rim_y, bw = 288, 250, 190
    c.shadow((cx - bw, rim_y + 96, cx + bw + 30, rim_y + 130), 0.4, 10)
    c.ellipse((cx - bw, rim_y - 30, cx + bw, rim_y + 30), fill=(150, 160, 176))  # bowl inside
    oranges = [(cx - 70, rim_y - 36), (cx + 62, rim_y - 40)]
    apples = [(cx - 120, rim_y - 10), (cx, rim_y - 14), (cx + 120, rim_y - 8)]
    for ox, oy in oranges:
        c.sphere(ox, oy, 50, (240, 140, 30), spec=0.35, shininess=12)
    # banana: a curved yellow crescent lying on top
    pts_out = [(cx - 30 + 150 * t, rim_y - 70 - 60 * math.sin(math.pi * t)) for t in np.linspace(0, 1, 20)]
    pts_in = [(cx - 30 + 150 * t, rim_y - 52 - 40 * math.sin(math.pi * t)) for t in np.linspace(1, 0, 20)]
    c.polygon(pts_out + pts_in, fill=(242, 208, 60))
    c.line(pts_out, (200, 160, 40), 2)
    c.ellipse((cx - 36, rim_y - 76, cx - 24, rim_y - 64), fill=(90, 70, 30))
    for ax, ay in apples:
        c.sphere(ax, ay, 46, (196, 28, 36), spec=0.7, shininess=30)
        c.line([(ax, ay - 40), (ax + 4, ay - 56)], (90, 60, 30), 3)
        c.ellipse((ax + 5, ay - 58, ax + 25, ay - 48), fill=(70, 150, 50))
    c.pieslice((cx - bw, rim_y - 150, cx + bw, rim_y + 150), 0, 180, fill=(232, 236, 242))  # bowl front
    c.arc((cx - bw, rim_y - 30, cx + bw, rim_y + 30), 0, 180, (250, 252, 255), 3)
    arr = c.array()
    yy, xx = np.mgrid[0:arr.shape[0], 0:arr.shape[1]].astype(np.float32)
    inside = ((xx / S - cx) / bw) ** 2 + ((yy / S - rim_y) / 150) ** 2 < 1
    shade = np.clip(0.75 + 0.35 * (1 - (xx / S - (cx - bw)) / (2 * bw)), 0.7, 1.1)
    arr = np.where((inside & (yy / S > rim_y + 2))[..., None], arr * shade[..., None], arr)
    c.set_array(arr)
    path = w.image(photo_finish(c.result(), rng, grain=2.5, vignette=0.25), name)
    return Sample(name, "scene", ["en"], ["Latn"], chat([img_part(path)], [
        ("How many apples are in the bowl, and what other fruit is there?",
         f"There are {len(apples)} red apples in the front of the bowl. Behind them are {len(oranges)} "
         "oranges, and a yellow banana lies across the top."),
        ("How many pieces of fruit is that in total?",
         f"{len(apples)} apples + {len(oranges)} oranges + 1 banana = "
         f"{len(apples) + len(oranges) + 1} pieces of fruit."),
    ]))


SCENES = [scene_mountains, scene_meadow, scene_beach, scene_room, scene_still_life, scene_city_night,
          scene_winter, scene_fruit_bowl]


# ========================================================================= videos


def room_background(rng, W, H, S=2) -> np.ndarray:
    h, wd = H * S, W * S
    floor_y = int(h * 0.7)
    wall = tint(noise2d(rng, h, wd, 60 * S, 4), (196, 210, 222), (224, 232, 238))
    floor = wood(rng, h, wd, base=(170, 120, 76), dark=(122, 80, 48), planks=4)
    a = np.where((np.arange(h)[:, None, None] >= floor_y), floor, wall)
    a[floor_y - 3 * S:floor_y + 2 * S] = (240, 240, 236)
    return a


def video_ball(w: Writer, seed) -> Sample:
    name = "ball"
    rng = rng_for(seed, "video_" + name)
    W, H, n = 384, 288, 8
    bg = room_background(rng, W, H)
    ground, r = H * 0.86, 22  # where the ball touches the floor, ball radius
    frames = []
    for i in range(n):
        t = i / (n - 1)
        x = 50 + t * 284
        height = 150 * abs(math.sin(math.pi * (t - 2 / 7) * 7 / 3))  # touches the floor in frames 2 and 5
        c = Canvas(W, H, bg)
        sw = 26 * (1 - height / 300)
        c.shadow((x - sw, ground - 4, x + sw, ground + 5), 0.5 * (1 - height / 250), 3)
        c.sphere(x, ground - r - height, r, (215, 35, 35))
        frames.append(photo_finish(c.result(), rng, grain=2.5, vignette=0.2))
    paths = w.video(frames, name)
    return Sample("video_" + name, "video", ["en"], ["Latn"], chat([video_part(paths)], [
        ("Describe what happens in this video.",
         "A red ball bounces across a room from left to right. It starts high on the left, hits the wooden "
         "floor twice (in the third and sixth frames) while moving right, and ends high on the right side; its "
         "shadow on the floor gets darker as it comes down."),
        ("In which direction is the ball moving?", "From left to right."),
    ]))


RECIPE = [("title", "Fluffy Pancakes"), ("meta", "Serves 4 · 20 minutes"), ("h", "Ingredients"),
          ("li", "200 g flour"), ("li", "2 eggs"), ("li", "300 ml milk"), ("li", "1 tbsp sugar"),
          ("li", "2 tsp baking powder"), ("li", "A pinch of salt"), ("li", "Butter for the pan"),
          ("h", "Method"), ("p", "1. Mix the flour, sugar, baking powder and salt in a bowl."),
          ("p", "2. Whisk the eggs with the milk and stir them into the dry ingredients."),
          ("p", "3. Let the batter rest for 5 minutes."),
          ("p", "4. Melt a little butter in a pan over medium heat."),
          ("p", "5. Pour in a ladle of batter and cook until bubbles appear, then flip."),
          ("p", "6. Serve warm with maple syrup or fresh berries.")]


def video_scroll(w: Writer, seed) -> Sample:
    name = "scroll_recipe"
    W, H, n, bar = 384, 288, 6, 44
    page = Canvas(W, 1000, (255, 255, 255))
    f = Flow(page, margin=22, y=14)
    for kind, text in RECIPE:
        if kind == "title":
            f.line(text, 22, "serif_bold", lh=1.5)
        elif kind == "meta":
            f.line(text, 12.5, fill=UI_MUTED, lh=1.8)
        elif kind == "h":
            f.gap(4)
            f.line(text, 16, "sans_bold", fill=(190, 80, 30), lh=1.6)
        elif kind == "li":
            f.line("•  " + text, 13.5, lh=1.6)
        else:
            f.para(text, 13.5, lh=1.5, after=0.5)
    page_h = int(f.y + 20)
    page_img = page.result().crop((0, 0, W, page_h))
    view_h = H - bar
    frames = []
    for i in range(n):
        off = round(i / (n - 1) * (page_h - view_h))
        c = Canvas(W, H, (255, 255, 255))
        c.paste(page_img.crop((0, off, W, off + view_h)), (0, bar))
        c.rect((0, 0, W, bar), fill=(250, 246, 240))
        c.text((16, bar / 2), "‹  Recipes", 14, "sans_bold", (190, 80, 30), "lm")
        c.line([(0, bar), (W, bar)], UI_LINE, 1)
        th = view_h * view_h / page_h
        ty = bar + (view_h - th) * off / (page_h - view_h)
        c.rect((W - 6, ty + 2, W - 2, ty + th - 2), fill=(150, 150, 156), radius=2)
        frames.append(c.result())
    paths = w.video(frames, name)
    return Sample("video_" + name, "video", ["en"], ["Latn"], chat([video_part(paths)], [
        ("What is this video showing?",
         "Someone scrolls down through a recipe for fluffy pancakes in a recipe app (serves 4, 20 minutes). "
         "It starts with the title and the ingredients: 200 g flour, 2 eggs, 300 ml milk, 1 tbsp sugar, "
         "2 tsp baking powder, a pinch of salt and butter for the pan. Then the six steps of the method scroll "
         "into view, ending with \"Serve warm with maple syrup or fresh berries.\""),
        ("How long should the batter rest?", "5 minutes (step 3)."),
    ]))


def coast_panorama(rng, W, H, S=2) -> Image.Image:
    h, wd = H * S, W * S
    yy, xx = np.mgrid[0:h, 0:wd].astype(np.float32)
    horizon = h * 0.5
    a = gradient(h, wd, [(0, (70, 140, 210)), (0.5, (190, 220, 240)), (1, (190, 220, 240))])
    a = sky_clouds(rng, a, 0, horizon * 0.85, cover=0.6, scale=40 * S, stretch=3.5)
    sea = gradient(h, wd, [(0, (30, 90, 150)), (0.5, (30, 90, 150)), (1, (50, 130, 170))])
    sea += (noise2d(rng, h, wd, scale=2 * S, scale_x=30 * S, octaves=3)[..., None] - 0.5) * 30
    a = np.where((yy >= horizon)[..., None], sea, a)
    # green hills and cliffs along the coast, lower towards the right where the lighthouse stands
    r = noise1d(rng, wd, 200 * S, 5)
    profile = horizon - (70 + 40 * r) * S * np.clip(1.15 - xx[0] / wd, 0.15, 1)
    land = tint(noise2d(rng, h, wd, 20 * S, 5), (60, 110, 50), (120, 170, 80))
    cliff_y = horizon + 40 * S * np.clip(1.1 - xx[0] / wd, 0.2, 1)
    rock = tint(noise2d(rng, h, wd, 6 * S, 4), (110, 100, 90), (170, 160, 150))
    a = np.where(((yy >= profile[None, :]) & (yy < cliff_y[None, :] - 12 * S))[..., None], land, a)
    a = np.where(((yy >= cliff_y[None, :] - 12 * S) & (yy < cliff_y[None, :]))[..., None], rock, a)
    foam = np.clip(1 - np.abs(yy - cliff_y[None, :] - 2 * S) / (3 * S), 0, 1)
    a = blend(a, (245, 250, 255), foam * 0.8)
    c = Canvas(W, H, a, ss=S)
    lx, base = 1040, H * 0.5 + 8
    c.ellipse((lx - 40, base - 10, lx + 44, base + 18), fill=(120, 112, 104))
    for k in range(6):
        y0, y1 = base - 18 - k * 18, base - k * 18
        wdt0, wdt1 = 15 - (k + 1) * 1.2, 15 - k * 1.2
        c.polygon([(lx - wdt1, y1), (lx + wdt1, y1), (lx + wdt0, y0), (lx - wdt0, y0)],
                  fill=(210, 40, 40) if k % 2 == 0 else (248, 248, 248))
    top = base - 108
    c.rect((lx - 10, top - 14, lx + 10, top), fill=(255, 230, 140))
    c.polygon([(lx - 13, top - 14), (lx + 13, top - 14), (lx, top - 28)], fill=(60, 60, 64))
    c.rect((lx - 14, top - 2, lx + 14, top + 2), fill=(60, 60, 64))
    return c.result()


def video_pan(w: Writer, seed) -> Sample:
    name = "pan_coast"
    rng = rng_for(seed, "video_" + name)
    W, H, n = 384, 288, 6
    pano = coast_panorama(rng, W * 3, H)
    frames = []
    for i in range(n):
        x = round(i / (n - 1) * (pano.width - W))
        frames.append(photo_finish(pano.crop((x, 0, x + W, H)), rng, grain=2.5, vignette=0.2))
    paths = w.video(frames, name)
    return Sample("video_" + name, "video", ["en"], ["Latn"], chat([video_part(paths)], [
        ("Describe the camera movement and what comes into view.",
         "The camera pans steadily from left to right along a coastline: green hills and rocky cliffs above a "
         "blue sea under a partly cloudy sky. The hills get lower towards the right, and in the last frame a "
         "red-and-white striped lighthouse on a rocky point comes into view."),
        ("Is there a lighthouse in the first frame?",
         "No. The lighthouse only appears at the end of the pan, on the right side of the last frame."),
    ]))


def car(c: Canvas, x, y, color=(40, 90, 200)):
    c.shadow((x - 4, y + 20, x + 104, y + 32), 0.4, 3)
    c.rect((x, y - 10, x + 100, y + 22), fill=color, radius=8)
    c.polygon([(x + 20, y - 10), (x + 32, y - 32), (x + 70, y - 32), (x + 84, y - 10)], fill=color)
    c.polygon([(x + 27, y - 12), (x + 36, y - 28), (x + 50, y - 28), (x + 50, y - 12)], fill=(190, 220, 240))
    c.polygon([(x + 54, y - 12), (x + 54, y - 28), (x + 67, y - 28), (x + 78, y - 12)], fill=(190, 220, 240))
    for wx in (x + 22, x + 78):
        c.ellipse((wx - 12, y + 10, wx + 12, y + 34), fill=(30, 30, 32))
        c.ellipse((wx - 5, y + 17, wx + 5, y + 27), fill=(170, 170, 176))
    c.ellipse((x + 92, y - 4, x + 100, y + 4), fill=(255, 240, 180))


def video_traffic(w: Writer, seed) -> Sample:
    name = "traffic_light"
    rng = rng_for(seed, "video_" + name)
    W, H, S = 384, 288, 2
    h, wd = H * S, W * S
    yy = np.arange(h, dtype=np.float32)[:, None, None]
    sky = gradient(h, wd, [(0, (120, 170, 220)), (1, (200, 220, 236))])
    sky = sky_clouds(rng, sky, 0, h * 0.4, cover=0.6, scale=30 * S)
    bld = tint(noise2d(rng, h, wd, 20 * S, 4), (150, 140, 130), (190, 180, 168))
    road = tint(noise2d(rng, h, wd, 3 * S, 3), (70, 70, 74), (100, 100, 104))
    walk = tint(noise2d(rng, h, wd, 10 * S, 3), (170, 168, 160), (200, 198, 190))
    a = np.where(yy < h * 0.3, sky, np.where(yy < h * 0.62, bld, np.where(yy < h * 0.68, walk, road)))
    bg = Canvas(W, H, a, ss=S)
    for bx in range(10, W, 64):
        for wy in range(98, 170, 26):
            bg.rect((bx, wy, bx + 22, wy + 16), fill=(90, 110, 130))
    bg.rect((232, 222, 240, 288), fill=(245, 245, 245))  # stop line
    states = ["red", "red", "green", "green", "green", "yellow"]
    car_x = [120, 120, 136, 190, 270, 360]
    frames = []
    for state, x in zip(states, car_x):
        c = Canvas(W, H, bg.img, ss=S)
        car(c, x, 236)
        c.rect((300, 60, 306, 196), fill=(60, 60, 64))
        c.rect((288, 20, 318, 100), fill=(36, 36, 40), radius=5)
        for k, (nm, on) in enumerate([("red", (235, 40, 40)), ("yellow", (250, 200, 40)), ("green", (40, 210, 90))]):
            col = on if state == nm else (70, 70, 74)
            c.ellipse((295, 26 + k * 24, 311, 42 + k * 24), fill=col)
        frames.append(photo_finish(c.result(), rng, grain=2.5, vignette=0.18))
    paths = w.video(frames, name)
    return Sample("video_" + name, "video", ["en"], ["Latn"], chat([video_part(paths)], [
        ("What happens in this video?",
         "A blue car waits at a red traffic light in front of the stop line. When the light turns green, the car "
         "drives off to the right and crosses the line; in the last frame the light has switched to yellow and "
         "the car is leaving the picture on the right."),
        ("In what order does the traffic light change?", "Red, then green, then yellow."),
    ]))


def video_upload(w: Writer, seed) -> Sample:
    name = "upload_progress"
    W, H = 448, 252
    frames = []
    for pct in (0, 40, 80, 100):
        c = Canvas(W, H, (236, 239, 244))
        c.rect((34, 30, 414, 222), fill=(255, 255, 255), outline=UI_LINE, radius=12)
        c.rect((58, 56, 94, 96), fill=(250, 200, 70), radius=4)
        c.text((76, 84), "ZIP", 10, "sans_bold", (120, 80, 0), "mm")
        c.text((108, 62), "holiday_photos.zip", 15, "sans_bold", UI_TEXT)
        c.text((108, 84), f"{pct * 240 // 100} MB of 240 MB", 12, "sans", UI_MUTED)
        c.rect((58, 122, 390, 136), fill=(226, 230, 236), radius=7)
        if pct:
            c.rect((58, 122, 58 + 332 * pct / 100, 136), fill=(22, 163, 74) if pct == 100 else UI_BLUE, radius=7)
        c.text((390, 152), f"{pct}%", 13, "sans_bold", UI_TEXT, "ra")
        if pct == 100:
            c.ellipse((58, 152, 76, 170), fill=(22, 163, 74))
            c.line([(62, 161), (66, 165), (72, 157)], (255, 255, 255), 2)
            c.text((84, 161), "Upload complete", 13, "sans_bold", (22, 163, 74), "lm")
            button(c, (290, 180, 390, 208), "Done", size=12)
        else:
            c.text((58, 161), "Uploading…", 13, "sans", UI_MUTED, "lm")
            button(c, (290, 180, 390, 208), "Cancel", bg=(238, 239, 242), fg=UI_TEXT, size=12)
        frames.append(c.result())
    paths = w.video(frames, name)
    return Sample("video_" + name, "video", ["en"], ["Latn"], chat([video_part(paths)], [
        ("What happens in this screen recording?",
         "A file named holiday_photos.zip (240 MB) is being uploaded. The progress bar goes from 0% to 40% "
         "(96 MB) and 80% (192 MB), and at the end it is full at 100% with a green \"Upload complete\" message "
         "and a \"Done\" button instead of \"Cancel\"."),
    ]))


VIDEOS = [video_ball, video_scroll, video_pan, video_traffic, video_upload]


# ==================================================================== multi-image


def multi_difference(w: Writer, seed) -> Sample:
    name = "multi_spot_difference"
    a = still_life(rng_for(seed, name), 448, 299)
    b = still_life(rng_for(seed, name), 448, 299, colors=((210, 40, 40), (60, 170, 70), (240, 200, 30)))
    pa, pb = w.image(a, name + "_a"), w.image(b, name + "_b")
    return Sample(name, "multi_image", ["en"], ["Latn"], chat([img_part(pa), img_part(pb)], [
        ("What is different between these two pictures?",
         "Only the small ball on the right changed colour: it is blue in the first picture and yellow in the "
         "second. The red ball on the left, the large green ball in the middle, the table and the background "
         "are the same."),
    ]))


def small_bar(year, vals, color) -> Image.Image:
    c = Canvas(448, 320)
    c.text((20, 14), f"Quarterly sales {year}", 16, "sans_bold", INK)
    c.text((20, 38), "Thousand units", 11, "sans", UI_MUTED)
    box = (56, 66, 428, 284)
    ymap = axes(c, box, 0, 60, 20)
    slot = (box[2] - box[0]) / 4
    for i, v in enumerate(vals):
        xa, xb = box[0] + slot * (i + 0.22), box[0] + slot * (i + 0.78)
        c.rect((xa, ymap(v), xb, box[3]), fill=color)
        c.text(((xa + xb) / 2, ymap(v) - 4), str(v), 12, "sans_bold", INK, "md")
        c.text(((xa + xb) / 2, box[3] + 8), f"Q{i + 1}", 12, "sans", INK, "ma")
    return c.result()


def multi_charts(w: Writer, seed) -> Sample:
    name = "multi_sales_years"
    v23, v24 = [32, 41, 38, 50], [36, 44, 49, 55]
    pa = w.image(small_bar(2023, v23, PALETTE[0]), name + "_2023", "flat")
    pb = w.image(small_bar(2024, v24, PALETTE[2]), name + "_2024", "flat")
    growth = [b - a for a, b in zip(v23, v24)]
    best = max(range(4), key=growth.__getitem__)
    return Sample(name, "multi_image", ["en"], ["Latn"], chat([img_part(pa), img_part(pb)], [
        ("The first chart is 2023 and the second is 2024. In which quarter did sales grow the most?",
         f"Q{best + 1}: from {v23[best]} to {v24[best]} thousand units, +{growth[best]}. The other quarters grew by "
         + ", ".join(f"{g} (Q{i + 1})" for i, g in enumerate(growth) if i != best) + "."),
        ("What were the total sales in each year?",
         f"2023: {' + '.join(map(str, v23))} = {sum(v23)} thousand units. 2024: {' + '.join(map(str, v24))} = "
         f"{sum(v24)} thousand units, {sum(v24) - sum(v23)} thousand more."),
    ]))


def multi_scenes(w: Writer, seed) -> Sample:
    name = "multi_scene_compare"
    paths = [w.paths[n] for n in ("scene_mountain_sunset", "scene_city_night", "scene_winter_house")]
    return Sample(name, "multi_image", ["en"], ["Latn"], chat([img_part(p) for p in paths], [
        ("Which of these three pictures was taken at night, and which one shows snow?",
         "The second picture is at night: a city skyline with lit windows under a starry sky and a crescent "
         "moon. The third shows snow: a red house and snowy pine trees while snowflakes fall. The first is a "
         "mountain lake at sunset."),
        ("Which picture contains water?", "The first one: the mountains are reflected in a calm lake."),
    ]))


MULTI = [multi_difference, multi_charts, multi_scenes]


# ====================================================================== text only


def _text(name, languages, scripts, turns, sys_prompt=None) -> Sample:
    msgs = [system(sys_prompt)] if sys_prompt else []
    for q, a in turns:
        msgs += [user(q), assistant(a)]
    return Sample(name, "text", languages, scripts, msgs)


def text_samples() -> list[Sample]:
    code = "You are a helpful programming assistant."
    return [
        _text("text_code_palindrome", ["en"], ["Latn"], [
            ("Write a Python function that checks whether a string is a palindrome.",
             "```python\ndef is_palindrome(s: str) -> bool:\n    return s == s[::-1]\n```\n\n"
             "`s[::-1]` is the string reversed, so `is_palindrome(\"level\")` returns `True` and "
             "`is_palindrome(\"hello\")` returns `False`."),
            ("Make it ignore case, spaces and punctuation, so that \"A man, a plan, a canal: Panama!\" counts.",
             "```python\ndef is_palindrome(s: str) -> bool:\n    cleaned = [ch.lower() for ch in s if ch.isalnum()]\n"
             "    return cleaned == cleaned[::-1]\n```\n\nIt keeps only letters and digits, lowercases them and "
             "compares the list with its reverse, so `is_palindrome(\"A man, a plan, a canal: Panama!\")` now "
             "returns `True`."),
        ], code),
        _text("text_code_js_closure", ["en"], ["Latn"], [
            ("Why does this print 3 three times instead of 0, 1, 2?\n\n```js\nfor (var i = 0; i < 3; i++) {\n"
             "  setTimeout(() => console.log(i), 100);\n}\n```",
             "`var` is function-scoped, so all three callbacks close over the same variable `i`. They run after "
             "100 ms, when the loop has already finished and `i` is 3. Declare the loop variable with `let`, which "
             "creates a fresh binding for every iteration:\n\n```js\nfor (let i = 0; i < 3; i++) {\n"
             "  setTimeout(() => console.log(i), 100);\n}\n```\n\nNow it prints 0, 1, 2."),
        ], code),
        _text("text_code_sql", ["en"], ["Latn"], [
            ("I have tables customers(id, name) and orders(id, customer_id, amount). Write a SQL query that "
             "returns the 3 customers with the highest total order amount.",
             "```sql\nSELECT c.name, SUM(o.amount) AS total\nFROM customers AS c\n"
             "JOIN orders AS o ON o.customer_id = c.id\nGROUP BY c.id, c.name\nORDER BY total DESC\nLIMIT 3;\n```\n\n"
             "The join attaches each order to its customer, `GROUP BY` adds up the amounts per customer, and "
             "`ORDER BY total DESC LIMIT 3` keeps the three largest totals. Grouping by `c.id` as well keeps two "
             "customers with the same name apart."),
            ("How do I list every customer, including those without orders, with a total of 0?",
             "Use a `LEFT JOIN` so customers without orders are kept, and turn their `NULL` sum into 0:\n\n"
             "```sql\nSELECT c.name, COALESCE(SUM(o.amount), 0) AS total\nFROM customers AS c\n"
             "LEFT JOIN orders AS o ON o.customer_id = c.id\nGROUP BY c.id, c.name\nORDER BY total DESC;\n```"),
        ], code),
        _text("text_math_equations", ["en"], ["Latn"], [
            ("Solve 3x + 7 = 22.",
             "Subtract 7 from both sides: 3x = 15. Divide by 3: x = 5.\nCheck: 3 · 5 + 7 = 22. ✓"),
            ("Now solve the system x + y = 10 and x − y = 4.",
             "Add the two equations: 2x = 14, so x = 7. Then y = 10 − 7 = 3.\nCheck: 7 + 3 = 10 and 7 − 3 = 4. ✓"),
        ]),
        _text("text_math_calculus", ["en"], ["Latn"], [
            ("What is the derivative of x² · sin(x)?",
             "Use the product rule (uv)' = u'v + uv' with u = x² and v = sin(x):\n\n"
             "d/dx [x² sin(x)] = 2x · sin(x) + x² · cos(x)."),
            ("And the integral of x · eˣ from 0 to 1?",
             "Integrate by parts with u = x and dv = eˣ dx, so du = dx and v = eˣ:\n\n"
             "∫ x eˣ dx = x eˣ − ∫ eˣ dx = (x − 1) eˣ + C.\n\n"
             "From 0 to 1: (1 − 1)e¹ − (0 − 1)e⁰ = 0 + 1 = 1."),
        ]),
        _text("text_math_discount", ["en"], ["Latn"], [
            ("A jacket costs 80 €. It is reduced by 25 %, and then the sale price is reduced by another 10 %. "
             "What is the final price? Is that the same as a 35 % discount?",
             "After 25 % off: 80 € × 0.75 = 60 €.\nAfter another 10 % off: 60 € × 0.90 = 54 €.\n\n"
             "The jacket costs 54 €, a total discount of 26 €, which is 32.5 %, not 35 %. The second discount "
             "is taken from the already reduced price: 0.75 × 0.90 = 0.675 of the original price."),
        ]),
        _text("text_science_photosynthesis", ["en"], ["Latn"], [
            ("Explain photosynthesis in simple terms.",
             "Photosynthesis is how plants, algae and some bacteria make their own food from light. Chlorophyll in "
             "the leaves absorbs sunlight, and the plant uses that energy to combine carbon dioxide from the air "
             "with water from the soil into glucose, a sugar it uses for energy and growth. Oxygen is released as "
             "a by-product:\n\n6 CO₂ + 6 H₂O + light → C₆H₁₂O₆ + 6 O₂"),
            ("Where in the cell does it happen?",
             "In the chloroplasts. The light-dependent reactions take place in the thylakoid membranes, where "
             "light energy splits water and releases oxygen; the Calvin cycle, which builds sugar from CO₂, runs "
             "in the stroma, the fluid around the thylakoids."),
        ]),
        _text("text_science_sky", ["en"], ["Latn"], [
            ("Why is the sky blue, but sunsets are red?",
             "Sunlight contains all colours. Air molecules scatter short wavelengths much more strongly than long "
             "ones (Rayleigh scattering grows roughly as 1/λ⁴), so blue light is scattered all over the sky and "
             "reaches your eyes from every direction: the sky looks blue.\n\nAt sunset the light crosses far more "
             "air before it reaches you. Most of the blue is scattered away along the way, and the remaining "
             "orange and red light dominates the sun and the clouds around it."),
        ]),
        _text("text_fr_savoir_connaitre", ["fr"], ["Latn"], [
            ("Quelle est la différence entre « savoir » et « connaître » ?",
             "« Savoir » s'emploie pour des informations et des compétences : on sait une chose, on sait faire "
             "quelque chose, on sait que… ou si… (« Je sais nager », « Je sais qu'il arrive demain »).\n\n"
             "« Connaître » s'emploie pour des personnes, des lieux ou des choses qui nous sont familiers ; il est "
             "toujours suivi d'un nom ou d'un pronom (« Je connais Marie », « Tu connais ce restaurant ? »)."),
            ("Donne-moi deux exemples de phrases pour chacun.",
             "Savoir : « Elle sait parler trois langues. » « Sais-tu où est la gare ? »\n"
             "Connaître : « Nous connaissons bien Lyon. » « Je ne connais pas ce livre. »"),
        ]),
        _text("text_zh_great_wall", ["zh", "en"], ["Hans", "Latn"], [
            ("请用三句话介绍一下长城。",
             "长城是中国古代修建的大型军事防御工程，始建于春秋战国时期，秦始皇统一中国后把各国的城墙连接了起来。"
             "现存的长城大部分是明朝修建的，西起甘肃嘉峪关，东至辽宁虎山，全长约8850公里。"
             "1987年，长城被列入联合国教科文组织《世界遗产名录》，如今是中国最著名的旅游景点之一。"),
            ("Please translate your answer into English.",
             "The Great Wall is a huge military defence work built in ancient China; construction began in the "
             "Spring and Autumn and Warring States periods, and after Qin Shi Huang unified China the walls of the "
             "different states were joined together. Most of the wall that survives today was built under the Ming "
             "dynasty; it runs from Jiayu Pass in Gansu in the west to Hushan in Liaoning in the east, about "
             "8,850 km in total. In 1987 the Great Wall was added to UNESCO's World Heritage List, and today it is "
             "one of China's most famous tourist sights."),
        ]),
        _text("text_es_language_tips", ["es"], ["Latn"], [
            ("Dame tres consejos para aprender un idioma nuevo.",
             "1. Practica un poco cada día: quince minutos diarios funcionan mejor que dos horas una vez por "
             "semana.\n2. Escucha y habla desde el principio: series, podcasts y conversaciones con nativos te "
             "acostumbran al ritmo real del idioma.\n3. Aprende frases completas, no palabras sueltas, y repásalas "
             "con tarjetas de memoria y repetición espaciada."),
            ("¿Cuánto tiempo se tarda en llegar a un nivel B1?",
             "Depende del idioma y de tu lengua materna, pero como orientación se suelen necesitar entre 350 y 500 "
             "horas de estudio guiado para un idioma cercano, como el español o el francés para un hablante de "
             "inglés. Con una hora al día, eso equivale aproximadamente a un año."),
        ]),
        _text("text_ru_planets", ["ru"], ["Cyrl"], [
            ("Сколько планет в Солнечной системе? Перечисли их по порядку от Солнца.",
             "Восемь: Меркурий, Венера, Земля, Марс, Юпитер, Сатурн, Уран и Нептун. Плутон с 2006 года "
             "считается карликовой планетой."),
            ("Какая из них самая большая?",
             "Юпитер. Его диаметр примерно в 11 раз больше земного, а масса примерно в 2,5 раза больше массы "
             "всех остальных планет вместе взятых."),
        ]),
        _text("text_ja_seasons", ["ja"], ["Jpan"], [
            ("日本の四季について簡単に説明してください。",
             "日本には春・夏・秋・冬の四つの季節があります。春（3月〜5月）は桜が咲き、お花見を楽しみます。"
             "夏（6月〜8月）は蒸し暑く、6月ごろには梅雨があります。秋（9月〜11月）は涼しくなり、紅葉がきれいです。"
             "冬（12月〜2月）は寒く、北海道や日本海側では雪がたくさん降ります。"),
        ]),
        _text("text_ar_hi_facts", ["ar", "hi"], ["Arab", "Deva"], [
            ("ما هي عاصمة المغرب؟ وما أكبر مدنها؟",
             "عاصمة المغرب هي الرباط، أما أكبر مدنها من حيث عدد السكان فهي الدار البيضاء."),
            ("وما اللغات الرسمية فيها؟",
             "اللغتان الرسميتان هما العربية والأمازيغية (منذ دستور 2011)، وتُستخدم الفرنسية على نطاق واسع في "
             "الإدارة والأعمال."),
            ("पानी किस तापमान पर उबलता है?",
             "समुद्र तल पर सामान्य वायुदाब में शुद्ध पानी 100 °C (212 °F) पर उबलता है। ऊँचाई पर वायुदाब कम होता है, "
             "इसलिए पानी कम तापमान पर उबलता है: लगभग 3,000 मीटर की ऊँचाई पर करीब 90 °C पर।"),
        ]),
        _text("text_translate_greeting", ["en", "de", "el", "ko", "hi"], ["Latn", "Grek", "Kore", "Deva"], [
            ("Translate \"Good morning, how are you?\" into German, Greek, Korean and Hindi.",
             "German: Guten Morgen, wie geht es Ihnen? (informal: Guten Morgen, wie geht's dir?)\n"
             "Greek: Καλημέρα, τι κάνετε; (informal: Καλημέρα, τι κάνεις;)\n"
             "Korean: 좋은 아침이에요, 잘 지내세요?\n"
             "Hindi: सुप्रभात, आप कैसे हैं?"),
            ("Why does the Greek sentence end with a semicolon?",
             "It is not a semicolon: in Greek the question mark is written \";\". The Greek semicolon is a raised "
             "dot (·) instead."),
        ], "You are a helpful multilingual assistant."),
    ]


# =========================================================================== build

CATEGORIES = ("document", "chart", "ui", "scene", "video", "multi_image", "text")
PICTURE_GENERATORS = DOCUMENTS + CHARTS + UIS + SCENES + VIDEOS + MULTI


def media_parts(messages: list[dict]) -> list[dict]:
    return [p for m in messages if isinstance(m["content"], list) for p in m["content"] if p["type"] != "text"]


def describe_media(out: Path, messages: list[dict]) -> tuple[list[dict], list[dict]]:
    images, videos = [], []
    for p in media_parts(messages):
        if p["type"] == "image":
            f = out / p["image"]
            with Image.open(f) as im:
                images.append({"path": p["image"], "width": im.width, "height": im.height,
                               "format": im.format, "bytes": f.stat().st_size})
        else:
            files = [out / q for q in p["video"]]
            with Image.open(files[0]) as im:
                wdt, hgt = im.size
            videos.append({"path": str(Path(p["video"][0]).parent), "frames": len(files), "fps": p["fps"],
                           "width": wdt, "height": hgt, "bytes": sum(f.stat().st_size for f in files)})
    return images, videos


def folder_bytes(out: Path) -> int:
    return sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and "__pycache__" not in f.parts)


def build(out: Path, seed: int = DEFAULT_SEED) -> list[Sample]:
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("images", "videos"):  # stale files from an older version must not linger
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    if not RAQM:
        warnings.warn("Pillow has no raqm layout engine: Arabic will be unshaped and drawn left to right, "
                      "Devanagari without conjuncts. Install libraqm0 (Debian) and re-run.", stacklevel=2)
    w = Writer(out)
    samples = [gen(w, seed) for gen in PICTURE_GENERATORS] + text_samples()
    ids = [s.id for s in samples]
    assert len(ids) == len(set(ids)), "duplicate sample ids"
    assert {s.category for s in samples} == set(CATEGORIES)
    with open(out / "builtin.jsonl", "w", encoding="utf-8", newline="\n") as fh:
        for s in samples:
            fh.write(json.dumps(s.messages, ensure_ascii=False) + "\n")
    entries = []
    for s in samples:
        images, videos = describe_media(out, s.messages)
        entry = {"id": s.id, "category": s.category, "languages": s.languages, "scripts": s.scripts,
                 "user_turns": sum(m["role"] == "user" for m in s.messages), "images": images, "videos": videos}
        if s.notes:
            entry["notes"] = s.notes
        entries.append(entry)
    media = sum(e["bytes"] for s in entries for e in s["images"] + s["videos"])
    manifest = {
        "description": "Built-in offline calibration set of qwen2vl-quant. Line i of builtin.jsonl is "
                       "samples[i]; media paths are relative to builtin.jsonl.",
        "generator": "make_builtin.py",
        "seed": seed,
        "complex_text_layout": RAQM,
        "counts": {cat: sum(s.category == cat for s in samples) for cat in CATEGORIES},
        "num_samples": len(samples),
        "media_bytes": media,
        "samples": entries,
    }
    (out / "builtin_manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n",
                                               encoding="utf-8")
    return samples


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                    help="output folder (default: next to this script)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        samples = build(args.out, args.seed)
    except FontError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    total = folder_bytes(args.out)
    counts = {cat: sum(s.category == cat for s in samples) for cat in CATEGORIES}
    print(f"wrote {len(samples)} samples to {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"total size: {total / 1024 / 1024:.2f} MiB ({total} bytes) in {time.perf_counter() - t0:.1f} s")
    if total > SIZE_BUDGET:
        print(f"error: over the {SIZE_BUDGET} byte budget", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
