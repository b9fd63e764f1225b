"""Image decode / encode / convert and mask conventions, all with Pillow.

Everything here is CPU work: call it through ``asyncio.to_thread`` from async code.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from imagegate.domain import MIME, ErrorCode, GatewayError

Image.MAX_IMAGE_PIXELS = 64_000_000  # refuse decompression bombs well before memory trouble

PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
FORMAT_BY_PIL = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}


@dataclass(slots=True)
class Probe:
    format: str  # png / jpeg / webp / gif ...
    mime: str
    width: int
    height: int


def open_image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def probe(data: bytes, param: str = "image") -> Probe:
    """Check that bytes are a decodable image and read its format and size (400 otherwise)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
        with Image.open(io.BytesIO(data)) as img:
            fmt = FORMAT_BY_PIL.get(img.format or "", (img.format or "unknown").lower())
            w, h = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise GatewayError(
            ErrorCode.invalid_image, f"'{param}' is not a decodable image ({exc.__class__.__name__})", param=param
        ) from exc
    return Probe(format=fmt, mime=MIME.get(fmt, f"image/{fmt}"), width=w, height=h)


def sniff_format(data: bytes) -> str | None:
    """Cheap magic-number check, no decode."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def encode(img: Image.Image, fmt: str, compression: int | None = None) -> bytes:
    """Encode to png/jpeg/webp. ``compression`` is OpenAI's 0-100 (100 = best quality)."""
    pil = PIL_FORMAT[fmt]
    buf = io.BytesIO()
    kw: dict[str, int] = {}
    if pil == "JPEG":
        if img.mode not in ("RGB", "L"):
            img = _flatten(img)
        kw["quality"] = compression if compression is not None else 92
    elif pil == "WEBP":
        kw["quality"] = compression if compression is not None else 90
        kw["method"] = 4
    else:
        # png is lossless: compression maps onto zlib effort (0-100 -> 9-1)
        kw["compress_level"] = 1 if compression is None else max(1, min(9, 9 - compression // 12))
        if img.mode not in ("RGB", "RGBA", "L", "LA", "P"):
            img = img.convert("RGBA")
    img.save(buf, pil, **kw)
    return buf.getvalue()


def _flatten(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    return img.convert("RGB")


def convert(data: bytes, fmt: str, compression: int | None = None, *, transparent: bool | None = None) -> bytes:
    """Return ``data`` as ``fmt``; untouched when it already is and nothing else is asked."""
    if sniff_format(data) == fmt and compression is None and transparent is None:
        return data
    img = open_image(data)
    if transparent is False and img.mode in ("RGBA", "LA", "P"):
        img = _flatten(img)
    return encode(img, fmt, compression)


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def edit_area(mask: bytes, size: tuple[int, int]) -> Image.Image:
    """An L image, 255 where the picture may change.

    Masks with an alpha channel follow OpenAI (alpha 0 = edit); masks without one follow the
    grayscale convention of Stability / BFL fill (white = edit).
    """
    m = open_image(mask)
    if m.mode in ("RGBA", "LA") or (m.mode == "P" and "transparency" in m.info):
        area = ImageOps.invert(m.convert("RGBA").getchannel("A"))
    else:
        area = m.convert("L")
    if area.size != size:
        area = area.resize(size, Image.Resampling.NEAREST)
    return area
