"""The offline built-in provider behind ``test/test``: no network, no keys, deterministic.

It draws from prompt + seed at the requested size, honours ``n``, and for edits really
composes the input images and keeps every pixel the mask protects (OpenAI's convention:
mask alpha 0 marks the area to change). A deployment option ``delay_ms`` makes each image take
that long, for trying async flows (queues, progress, timeouts) offline; while it waits it reports
its progress ten times, as a slow upstream would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from PIL import Image, ImageOps

from imagegate.domain import MIME, GeneratedImage, ImageInput, ImageRequest, ProviderResult
from imagegate.media import codecs, synth
from imagegate.providers.base import PollResult, Provider
from imagegate.providers.toolkit import image_work, input_pixels


def _compose(inputs: list[ImageInput], w: int, h: int) -> Image.Image:
    """Lay the inputs side by side over the canvas, each filling its own vertical strip."""
    canvas = Image.new("RGB", (w, h))
    strip = max(1, w // len(inputs))
    for i, inp in enumerate(inputs):
        img = codecs.open_image(inp.data).convert("RGB")
        cell_w = strip if i < len(inputs) - 1 else w - strip * i
        canvas.paste(ImageOps.fit(img, (cell_w, h)), (strip * i, 0))
    return canvas


def _draw(req: ImageRequest, index: int, w: int, h: int) -> bytes:
    art = synth.render(req.prompt, w, h, seed=req.seed, index=index)
    if req.images:
        base = _compose(req.images, w, h)
        if req.mask is not None:
            edit_area = codecs.edit_area(req.mask.data, (w, h))
            art = Image.composite(art, base, edit_area)
        else:
            art = Image.blend(base, art, 0.35)
    if req.background == "transparent" and req.output_format in ("png", "webp"):
        art = art.convert("RGBA")
        alpha = Image.new("L", (w, h), 0)
        alpha.paste(255, (w // 8, h // 8, w - w // 8, h - h // 8))
        art.putalpha(alpha)
    return codecs.encode(art, req.output_format, req.output_compression)


class BuiltinProvider(Provider):
    name = "builtin"
    kind = "sync"
    replay_safe = True  # offline and free
    credential_names = ()

    async def generate_live(
        self, req: ImageRequest, on_progress: Callable[[PollResult], Awaitable[None]]
    ) -> ProviderResult:
        await self._wait(req, on_progress)
        return await self._draw_all(req)

    async def generate(self, req: ImageRequest) -> ProviderResult:
        await self._wait(req, None)
        return await self._draw_all(req)

    async def _wait(self, req: ImageRequest, on_progress: Callable[[PollResult], Awaitable[None]] | None) -> None:
        delay_ms = float(self.deployment.options.get("delay_ms", 0)) * req.n
        if delay_ms <= 0:
            return
        steps = 10 if on_progress is not None else 1
        for step in range(steps):
            if on_progress is not None:
                await on_progress(PollResult(done=False, progress=step * 100 // steps))
            await asyncio.sleep(delay_ms / steps / 1000)

    async def _draw_all(self, req: ImageRequest) -> ProviderResult:
        if req.width and req.height:
            w, h = req.width, req.height
        elif req.images:
            w, h = req.images[0].width, req.images[0].height
        else:
            w, h = 1024, 1024
        # Pillow releases the GIL while encoding; a thread keeps the event loop free.
        pixels = input_pixels(req) + w * h  # the inputs decoded for the composition, and the canvas
        blobs = await asyncio.gather(*(image_work(pixels, _draw, req, i, w, h) for i in range(req.n)))
        mime = MIME[req.output_format]
        return ProviderResult(images=[GeneratedImage(data=b, mime=mime) for b in blobs])
