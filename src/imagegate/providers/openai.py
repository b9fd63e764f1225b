"""OpenAI Images API: ``/images/generations`` (JSON) and ``/images/edits`` (multipart).

GPT image models always answer base64; dall-e models are asked for ``b64_json`` too, so we
never race a 60-minute URL. ``size`` is the size validation accepted, from the model's catalog
``sizes`` or ``size_rule`` (gpt-image-2: multiples of 16, 1:3..3:1, 655,360 to 8,294,400 pixels);
an open size is ``auto`` where the model picks one itself. ``n`` larger than the model's
``images_per_call`` (dall-e-3: 1) is fanned out into parallel calls. ``deployment.options.defaults``
fills fields the client left unset (e.g. ``{moderation: low, quality: low}`` for a flat-priced tier).

Wire families: GPT image models take ``background``, ``moderation``, ``output_format`` (+
``output_compression``) and, on edits, ``input_fidelity`` (where the catalog lists it) and ``image[]``;
dall-e-3 takes ``style``; dall-e-2 edits take a single ``image``.

Streaming (GPT image models, one image per call): with ``stream: true`` and ``partial_images``
(0-3) the upstream answers ``text/event-stream``, each event named as its data's ``type``:
``image_generation.partial_image`` (``image_edit.*`` for edits) with ``b64_json`` and
``partial_image_index``, then ``*.completed`` with the image's ``b64_json`` and ``usage``, or an
``error`` event with OpenAI's error object. A request that asked for previews is sent so and its
previews are reported as they arrive; the completed image is the result, as a plain call's is.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import orjson
from PIL import Image, ImageOps

from imagegate.catalog.schema import ModelSpec
from imagegate.domain import (
    MIME,
    ErrorCode,
    GeneratedImage,
    ImageInput,
    ImageRequest,
    PartialImage,
    ProviderResult,
    UpstreamError,
    openai_usage,
)
from imagegate.media import b64, codecs
from imagegate.providers.base import PollResult, Provider
from imagegate.providers.toolkit import (
    FilePart,
    chunks,
    http_error,
    image_work,
    input_pixels,
    json_body,
    per_call,
    pixel_size,
    retry_after_of,
    sum_usage,
)

MODERATION_CODES = {"moderation_blocked", "content_policy_violation"}
QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"}
#: the same quality in the other family's words (dall-e-3: standard/hd, GPT image: low/medium/high)
QUALITY_ALIASES = {
    "hd": "high",
    "high": "hd",
    "standard": "medium",
    "medium": "standard",
    "low": "standard",
    "auto": "standard",
}


def family(model: str) -> str:
    """'dall-e-2' | 'dall-e-3' | 'gpt-image': which request fields the upstream model takes."""
    m = model.lower()
    if m.startswith("dall-e-2"):
        return "dall-e-2"
    if m.startswith("dall-e-3"):
        return "dall-e-3"
    return "gpt-image"


def size_for(spec: ModelSpec, req: ImageRequest) -> str | None:
    """The ``size`` value to send: the validated size; an open one is ``auto`` where the model picks
    it itself, else left out (None)."""
    dims = pixel_size(spec, req, "nearest")
    if dims is None:
        return "auto" if spec.upstream_auto_size else None
    return f"{dims[0]}x{dims[1]}"


def quality_for(spec: ModelSpec, quality: str | None) -> str | None:
    """The model's own word for a quality; None where it takes none (dall-e-2)."""
    if not quality or not spec.qualities:
        return None
    if quality in spec.qualities:
        return quality
    alias = QUALITY_ALIASES.get(quality)
    return alias if alias in spec.qualities else None


def alpha_mask(mask: ImageInput, size: tuple[int, int]) -> bytes:
    """OpenAI wants a PNG mask the size of the first image, alpha 0 where to edit."""
    area = codecs.edit_area(mask.data, size)
    out = Image.new("RGBA", size, (0, 0, 0, 255))
    out.putalpha(ImageOps.invert(area))
    buf = io.BytesIO()
    out.save(buf, "PNG")
    return buf.getvalue()


def with_defaults(fields: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Drop unset fields, then fill ``options.defaults`` (e.g. ``{moderation: low}``) where the client set none."""
    out = {k: v for k, v in fields.items() if v is not None}
    for k, v in (options.get("defaults") or {}).items():
        out.setdefault(k, v)
    return out


def error_from(provider: str, resp: httpx.Response) -> UpstreamError:
    """Map OpenAI's ``{"error": {message, type, param, code}}`` envelope."""
    err = json_body(resp).get("error") or {}
    if not isinstance(err, dict):
        err = {"message": str(err)}
    code = str(err.get("code") or "")
    param = err.get("param") or None
    status = resp.status_code
    if status in (401, 403):
        # OpenAI's 401 message echoes part of the key: never pass it on.
        return http_error(provider, status, f"authentication failed ({code or status})")
    message = str(err.get("message") or resp.text[:200] or f"HTTP {status}")
    if code in QUOTA_CODES or err.get("type") == "insufficient_quota":
        return UpstreamError(ErrorCode.upstream_quota, f"{provider}: {message}", status=status)
    moderated = code in MODERATION_CODES or err.get("type") == "image_generation_user_error" and "safety" in message
    return http_error(
        provider,
        status,
        message,
        retry_after=retry_after_of(resp),
        moderated=moderated,
        param=param if isinstance(param, str) else None,
    )


class OpenAIProvider(Provider):
    name = "openai"
    kind = "sync"
    default_base_url = "https://api.openai.com/v1"

    # -- request building (overridable by OpenAI-shaped gateways) -----------------------
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential('api_key')}"}

    def per_call_n(self) -> int:
        return per_call(self.spec)

    def fields(self, req: ImageRequest, n: int) -> dict[str, Any]:
        """Body fields common to generations and edits, in OpenAI's names."""
        model = self.deployment.model
        fam = family(model)
        gpt = fam == "gpt-image"
        f: dict[str, Any] = {"model": model, "prompt": req.prompt, "n": n}
        f["size"] = size_for(self.spec, req)
        f["quality"] = quality_for(self.spec, req.quality)
        f["user"] = req.user
        if gpt:
            f["background"] = req.background
            f["moderation"] = req.moderation
            f["output_format"] = req.output_format
            if req.output_format in ("jpeg", "webp"):
                f["output_compression"] = req.output_compression
        else:
            f["response_format"] = "b64_json"
            if fam == "dall-e-3":
                f["style"] = req.style
        if req.mode == "edit" and gpt:  # validation let it through only where the catalog lists it
            f["input_fidelity"] = req.input_fidelity
        return with_defaults(f, self.deployment.options)

    def files(self, req: ImageRequest) -> list[FilePart]:
        """Multipart file parts of an edit: ``image[]`` (or ``image`` for dall-e-2) and ``mask``."""
        out: list[FilePart] = []
        field = "image" if family(self.deployment.model) == "dall-e-2" else "image[]"
        images = req.images[: max(1, self.spec.max_images)]
        for i, img in enumerate(images):
            ext = img.mime.split("/")[-1].replace("jpeg", "jpg")
            out.append((field, (f"image_{i}.{ext}", img.data, img.mime)))
        if req.mask is not None and images:
            first = images[0]
            out.append(("mask", ("mask.png", alpha_mask(req.mask, (first.width, first.height)), "image/png")))
        return out

    def endpoint(self, mode: str) -> str:
        return f"{self.base_url}/images/{'edits' if mode == 'edit' else 'generations'}"

    # -- the call ---------------------------------------------------------------------------
    async def generate(self, req: ImageRequest) -> ProviderResult:
        files = await image_work(input_pixels(req), self.files, req) if req.mode == "edit" and req.images else None
        results = await asyncio.gather(*(self._call(req, k, files) for k in chunks(req.n, self.per_call_n())))
        images = await self.download_all([img for r in results for img in r.images])
        return ProviderResult(
            images=images, usage=sum_usage(r.usage for r in results), tokens=sum_usage(r.tokens for r in results)
        )

    async def _call(self, req: ImageRequest, n: int, files: list[FilePart] | None) -> ProviderResult:
        body = self.fields(req, n)
        if files is not None:
            data = {k: str(v) for k, v in body.items()}
            resp = await self.request("POST", self.endpoint("edit"), headers=self.headers(), data=data, files=files)
        else:
            resp = await self.request("POST", self.endpoint("generate"), headers=self.headers(), json=body)
        if resp.status_code != 200:
            raise error_from(self.name, resp)
        # decoding megabytes of JSON and base64 is CPU work: keep it off the event loop
        return await asyncio.to_thread(self.parse, resp, req)

    async def generate_live(
        self, req: ImageRequest, on_progress: Callable[[PollResult], Awaitable[None]]
    ) -> ProviderResult:
        """One GPT image asked with previews: stream it, reporting each preview as it arrives."""
        if not req.partial_images or req.n != 1 or family(self.deployment.model) != "gpt-image":
            return await self.generate(req)
        files = await image_work(input_pixels(req), self.files, req) if req.mode == "edit" and req.images else None
        body = {**self.fields(req, 1), "stream": True, "partial_images": req.partial_images}
        kw: dict[str, Any] = {"json": body}
        if files is not None:
            kw = {"data": {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in body.items()}}
            kw["files"] = files
        url = self.endpoint("edit" if files is not None else "generate")
        try:
            async with self.http.stream(
                "POST", url, headers=self.headers(), timeout=self.deployment.timeout, **kw
            ) as resp:
                if resp.status_code != 200:
                    await resp.aread()
                    raise error_from(self.name, resp)
                completed = await self._previews(resp, on_progress)
        except httpx.TimeoutException as exc:
            raise UpstreamError(ErrorCode.upstream_timeout, f"{self.name}: upstream timed out") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(
                ErrorCode.upstream_unavailable, f"{self.name}: the stream broke ({type(exc).__name__})"
            ) from exc
        data = await asyncio.to_thread(b64.decode, str(completed.get("b64_json") or ""))
        mime = MIME.get(codecs.sniff_format(data) or req.output_format)
        usage = completed.get("usage")
        return ProviderResult(images=[GeneratedImage(data=data, mime=mime)], usage=usage, tokens=openai_usage(usage))

    async def _previews(
        self, resp: httpx.Response, on_progress: Callable[[PollResult], Awaitable[None]]
    ) -> dict[str, Any]:
        """Report each preview; the completed event's data (an error event raises)."""
        async for name, data in sse_events(resp):
            if name.endswith(".partial_image") and data.get("b64_json"):
                index = int(data.get("partial_image_index") or 0)
                await on_progress(PollResult(done=False, partial=PartialImage(str(data["b64_json"]), index)))
            elif name.endswith(".completed"):
                return data
            elif name == "error":
                err = data.get("error")
                message = str((err if isinstance(err, dict) else {}).get("message") or "the stream reported an error")
                raise UpstreamError(ErrorCode.upstream_error, f"{self.name}: {message}")
        raise UpstreamError(ErrorCode.upstream_error, f"{self.name}: the stream ended without an image")

    def parse(self, resp: httpx.Response, req: ImageRequest) -> ProviderResult:
        try:
            payload = orjson.loads(resp.content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(ErrorCode.upstream_error, f"{self.name}: response is not JSON") from exc
        fmt = payload.get("output_format") or (
            req.output_format if family(self.deployment.model) == "gpt-image" else "png"
        )
        images: list[GeneratedImage] = []
        for item in payload.get("data") or []:
            revised = item.get("revised_prompt")
            if item.get("b64_json"):
                data = b64.decode(item["b64_json"])
                mime = MIME.get(codecs.sniff_format(data) or fmt)
                images.append(GeneratedImage(data=data, mime=mime, revised_prompt=revised))
            elif item.get("url"):
                images.append(GeneratedImage(url=item["url"], revised_prompt=revised))
        if not images:
            raise UpstreamError(ErrorCode.upstream_error, f"{self.name}: response held no images")
        usage = payload.get("usage")
        return ProviderResult(images=images, usage=usage, tokens=openai_usage(usage))


async def sse_events(resp: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event name, JSON data) of each server-sent event; comments and non-JSON data are skipped."""
    name, lines = "", list[str]()
    async for line in resp.aiter_lines():
        if line == "":
            if lines:
                try:
                    data = orjson.loads("\n".join(lines))
                except orjson.JSONDecodeError:
                    data = None
                if isinstance(data, dict):
                    yield name or str(data.get("type") or ""), data
            name, lines = "", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
