"""Small previews of stored outputs: decoded once, shrunk, encoded as WebP.

WebP keeps an output's transparency and is a fraction of a PNG's bytes at these sizes. A JPEG is
decoded at a reduced scale (``draft``): a thumbnail of a 4-megapixel JPEG then decodes a quarter
or less of its pixels. The job holds the output's pixels in the decode pool's budget while it runs.
"""

from __future__ import annotations

import io

from PIL import Image

from imagegate.media.codecs import header_pixels, open_image
from imagegate.media.pool import DECODES

#: the thumbnail's WebP quality: previews, not copies
QUALITY = 80


def thumbnail(data: bytes, size: int) -> bytes:
    """``data`` shrunk to fit ``size`` x ``size`` (aspect kept, never enlarged), as WebP."""
    with DECODES.budget.hold(header_pixels(data)):
        with Image.open(io.BytesIO(data)) as probe:
            drafted = probe.format == "JPEG"
        img = open_image(data) if not drafted else _draft(data, size)
        if img.mode not in ("RGB", "RGBA"):
            img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
        img.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        buf = io.BytesIO()
        img.save(buf, "WEBP", quality=QUALITY, method=4)
        return buf.getvalue()


def _draft(data: bytes, size: int) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.draft("RGB", (size, size))  # the JPEG decoder's own downscale (1/2, 1/4, 1/8), never below size
    img.load()
    return img


async def thumbnail_async(data: bytes, size: int) -> bytes:
    """:func:`thumbnail` in the decode pool, under the output's share of the pixel budget."""
    return await DECODES.run(header_pixels(data), thumbnail, data, size)
