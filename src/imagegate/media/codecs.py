"""Image decode / encode / convert and mask conventions, all with Pillow.

Everything here is CPU work: call it through ``asyncio.to_thread`` from async code, or better
through the decode pool (``media.pool.DECODES``), which also bounds the memory concurrent decodes
take. The helpers that decode hold a share of that pool's pixel budget themselves, so a caller
that forgets the pool still cannot run many big decodes at once; a caller that keeps the decoded
picture beyond the call should run its whole job through ``DECODES.run``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from imagegate.domain import MIME, ErrorCode, GatewayError
from imagegate.media.pool import DECODES

#: a backstop for every decode, outputs included; inputs meet the tighter ``max_pixels`` of :func:`probe`
Image.MAX_IMAGE_PIXELS = 64_000_000
#: input images above this many pixels are refused from their header (``Settings.max_image_pixels``)
DEFAULT_MAX_PIXELS = 40_000_000

PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
FORMAT_BY_PIL = {
    "PNG": "png",
    "JPEG": "jpeg",
    "MPO": "jpeg",  # a camera's multi-picture JPEG: its first picture is a plain JPEG
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tiff",
}
#: the only decoders an input reaches: Pillow's many rarer ones are attack surface nobody sends images in
#: (MPO is no opener of its own: the JPEG one hands multi-picture files over to it)
INPUT_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
_UNDECODABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@dataclass(slots=True)
class Probe:
    format: str  # png / jpeg / webp / gif ...
    mime: str
    width: int
    height: int


def open_image(data: bytes) -> Image.Image:
    """Decode fully; the decode holds its share of the pixel budget (the picture returned does not)."""
    img = Image.open(io.BytesIO(data))
    with DECODES.budget.hold(img.width * img.height):
        img.load()
    return img


def probe(data: bytes, param: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS) -> Probe:
    """Read an input's format and size from its header, refuse it above ``max_pixels``, then verify it.

    Nothing here decodes pixels: a 400 KB PNG can declare 10000x10000 and cost 400 MB once
    decoded, so the size is judged before anything else looks at the data. ``verify`` only
    walks the file's structure (PNG chunk checksums, for one).
    """
    try:
        with Image.open(io.BytesIO(data), formats=INPUT_FORMATS) as img:
            fmt = FORMAT_BY_PIL.get(img.format or "", (img.format or "unknown").lower())
            w, h = img.size
            check_pixels(w, h, param, max_pixels)
            img.verify()
    except Image.DecompressionBombError as exc:  # Pillow's own backstop, above twice its MAX_IMAGE_PIXELS
        raise too_many_pixels(param, max_pixels) from exc
    except _UNDECODABLE as exc:
        raise GatewayError(
            ErrorCode.invalid_image, f"'{param}' is not a decodable image ({exc.__class__.__name__})", param=param
        ) from exc
    return Probe(format=fmt, mime=MIME.get(fmt, f"image/{fmt}"), width=w, height=h)


def check_pixels(width: int, height: int, param: str, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise GatewayError(ErrorCode.invalid_image, f"'{param}' declares an empty {width}x{height} image", param=param)
    if width * height > max_pixels:
        raise too_many_pixels(param, max_pixels, f" ({width}x{height} is {width * height:,})")


def too_many_pixels(param: str, max_pixels: int, detail: str = "") -> GatewayError:
    return GatewayError(
        ErrorCode.invalid_image,
        f"'{param}' has more than the {max_pixels:,} pixels allowed per input image{detail}",
        param=param,
    )


def header_pixels(data: bytes) -> int:
    """Width x height from the header alone (0 when unreadable): the weight of a job in the decode pool."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return int(img.width * img.height)
    except _UNDECODABLE:
        return 0


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
    with DECODES.budget.hold(header_pixels(data)):  # decode to encode: the whole peak is in here
        img = open_image(data)
        if transparent is False and img.mode in ("RGBA", "LA", "P"):
            img = _flatten(img)
        return encode(img, fmt, compression)


async def convert_async(
    data: bytes, fmt: str, compression: int | None = None, *, transparent: bool | None = None
) -> bytes:
    """:func:`convert` in the decode pool: waiting for budget ties up none of the default executor's threads."""
    if sniff_format(data) == fmt and compression is None and transparent is None:
        return data
    return await DECODES.run(header_pixels(data), convert, data, fmt, compression, transparent=transparent)


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def edit_area(mask: bytes, size: tuple[int, int]) -> Image.Image:
    """An L image, 255 where the picture may change.

    Masks with an alpha channel follow OpenAI (alpha 0 = edit); masks without one follow the
    grayscale convention of Stability / BFL fill (white = edit).
    """
    with DECODES.budget.hold(header_pixels(mask) + size[0] * size[1]):
        m = open_image(mask)
        if m.mode in ("RGBA", "LA") or (m.mode == "P" and "transparency" in m.info):
            area = ImageOps.invert(m.convert("RGBA").getchannel("A"))
        else:
            area = m.convert("L")
        if area.size != size:
            area = area.resize(size, Image.Resampling.NEAREST)
        return area
