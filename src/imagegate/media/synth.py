"""Deterministic synthetic pictures: the built-in test model and the provider fakes draw with this.

The same (prompt, seed, size) always gives the same pixels; different prompts give visibly
different colours, so tests can tell outputs apart without any model.
"""

from __future__ import annotations

import hashlib
import io

from PIL import Image, ImageDraw, ImageOps


def _palette(prompt: str, seed: int | None, index: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    h = hashlib.sha256(f"{prompt}\x00{seed}\x00{index}".encode()).digest()
    return (h[0], h[1], h[2]), (h[3], h[4], h[5])


def render(prompt: str, width: int, height: int, *, seed: int | None = None, index: int = 0) -> Image.Image:
    """An RGB picture: a two-colour diagonal gradient with a band whose place depends on the prompt."""
    a, b = _palette(prompt, seed, index)
    ramp = Image.linear_gradient("L").rotate(45, expand=False).resize((width, height), Image.Resampling.BILINEAR)
    img = ImageOps.colorize(ramp, black=a, white=b)
    draw = ImageDraw.Draw(img)
    band = (hashlib.sha256(f"{prompt}{seed}".encode()).digest()[6] / 255.0) * 0.8 + 0.1
    y = int(height * band)
    draw.rectangle([0, max(0, y - height // 40), width, min(height, y + height // 40)], fill=b[::-1])
    return img


def encode(img: Image.Image, fmt: str = "png", quality: int | None = None) -> bytes:
    buf = io.BytesIO()
    pil_fmt = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt.lower()]
    if pil_fmt == "JPEG" and img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    kw: dict[str, int] = {}
    if pil_fmt in ("JPEG", "WEBP"):
        kw["quality"] = quality if quality is not None else 90
    if pil_fmt == "PNG":
        kw["compress_level"] = 1
    img.save(buf, pil_fmt, **kw)
    return buf.getvalue()


def render_bytes(
    prompt: str, width: int, height: int, fmt: str = "png", *, seed: int | None = None, index: int = 0
) -> bytes:
    return encode(render(prompt, width, height, seed=seed, index=index), fmt)
