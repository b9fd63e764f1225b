"""The contract between the engine and one upstream provider.

An adapter only translates: :class:`ImageRequest` -> the provider's wire format, and the
provider's answer -> :class:`ProviderResult` (image bytes or URLs we download ourselves). It is
built with its model's catalog entry (``spec``): the capabilities it maps onto the wire are the
ones validation checked, never constants of its own. :mod:`imagegate.providers.registry` names
every adapter; the engine never branches per provider.

Two kinds:
- ``sync``: :meth:`Provider.generate` returns the images.
- ``poll``: :meth:`Provider.submit` returns a JSON-safe *handle* (upstream ids, poll URLs) that
  the runner stores on the task before it calls :meth:`Provider.poll`, so a restarted process
  resumes polling instead of submitting (and paying) again.

Submit exactly once: the runner gives each submit a *client reference* (``ig-<task id>``). An
adapter whose upstream takes such a reference sends it and overrides :meth:`Provider.find`, so a
process taking over a task interrupted mid-submit asks the upstream whether the job exists
before it sends anything again; :meth:`Provider.resubmit` derives what the catalog shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import httpx

from imagegate.catalog import Deployment
from imagegate.catalog.schema import ModelSpec
from imagegate.domain import ErrorCode, GeneratedImage, ImageRequest, PartialImage, ProviderResult, UpstreamError
from imagegate.providers.toolkit import http_error

__all__ = ["Deployment", "PollResult", "Provider", "Resubmit", "http_error"]

#: what a process taking over an interrupted call does: ``lookup`` asks the upstream for the job by its
#: client reference first; ``replay`` calls again (free and harmless); ``none`` ends the task refunded
Resubmit = Literal["lookup", "replay", "none"]


@dataclass(slots=True)
class PollResult:
    """One look at a submitted upstream job."""

    done: bool
    result: ProviderResult | None = None
    progress: int | None = None  # 0-100 when the provider reports it
    handle: dict[str, Any] | None = None  # an updated handle to store, if the adapter changed it
    partial: PartialImage | None = None  # a preview the upstream streamed (for the task's live followers)


class Provider:
    """Base class for adapters. Subclasses set ``name`` and ``kind`` and override the hooks."""

    name: ClassVar[str]
    kind: ClassVar[Literal["sync", "poll"]] = "sync"
    default_base_url: ClassVar[str | None] = None
    #: credential names the adapter reads from ``deployment.credentials``
    credential_names: ClassVar[tuple[str, ...]] = ("api_key",)
    #: calling it again costs nothing and changes nothing upstream (a task interrupted mid-call may re-run)
    replay_safe: ClassVar[bool] = False

    @classmethod
    def records_submit(cls) -> bool:
        """Whether a call may have reached the upstream only after the runner recorded a submit.

        A poll-kind adapter's submit is recorded first, so a task taken over before that record
        sent nothing; a sync-kind call has no record, so it may have been in flight.
        """
        return cls.kind == "poll" or cls.replay_safe

    @classmethod
    def resubmit(cls) -> Resubmit:
        """Derived from the adapter itself (never restated in the catalog): ``lookup`` when it overrides
        :meth:`find`, ``replay`` when calling again is harmless, ``none`` otherwise."""
        if cls.kind == "poll" and cls.find is not Provider.find:
            return "lookup"
        return "replay" if cls.replay_safe else "none"

    def __init__(self, deployment: Deployment, spec: ModelSpec, http: httpx.AsyncClient) -> None:
        self.deployment = deployment
        self.spec = spec  # the catalog model this deployment serves: its capabilities are the adapter's rules
        self.http = http

    @property
    def base_url(self) -> str:
        url = self.deployment.base_url or self.default_base_url
        if not url:
            raise UpstreamError(ErrorCode.upstream_error, f"deployment {self.deployment.id} has no base_url")
        return url.rstrip("/")

    def credential(self, name: str = "api_key") -> str:
        return self.deployment.credentials.get(name, "")

    # -- hooks ---------------------------------------------------------------------------
    async def generate(self, req: ImageRequest) -> ProviderResult:
        raise NotImplementedError(f"{self.name} is a {self.kind} provider")

    async def generate_live(
        self, req: ImageRequest, on_progress: Callable[[PollResult], Awaitable[None]]
    ) -> ProviderResult:
        """:meth:`generate`, reporting previews through ``on_progress`` where the upstream streams them
        (``req.partial_images``); an adapter whose upstream does not stream leaves this as it is."""
        return await self.generate(req)

    async def submit(self, req: ImageRequest, reference: str | None = None) -> dict[str, Any]:
        """Start the job; ``reference``: the task's client reference, sent where the upstream takes one."""
        raise NotImplementedError(f"{self.name} is a {self.kind} provider")

    async def find(self, reference: str, req: ImageRequest) -> dict[str, Any] | None:
        """The handle of the job submitted with ``reference``, or None when the upstream has none.

        Only for upstreams that can be asked; an answer that proves nothing either way raises
        :class:`UpstreamError`, never None (None means: send it again).
        """
        raise NotImplementedError(f"{self.name} cannot look a job up by its reference")

    async def poll(self, handle: dict[str, Any]) -> PollResult:
        raise NotImplementedError(f"{self.name} is a {self.kind} provider")

    async def cancel(self, handle: dict[str, Any]) -> None:
        return None

    # -- helpers shared by adapters --------------------------------------------------------
    async def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        """Send one request, turning transport failures into :class:`UpstreamError`."""
        kw.setdefault("timeout", self.deployment.timeout)
        try:
            return await self.http.request(method, url, **kw)
        except httpx.TimeoutException as exc:
            raise UpstreamError(ErrorCode.upstream_timeout, f"{self.name}: upstream timed out") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(
                ErrorCode.upstream_unavailable, f"{self.name}: cannot reach upstream ({type(exc).__name__})"
            ) from exc

    async def download(self, url: str, headers: dict[str, str] | None = None) -> GeneratedImage:
        """Fetch a result URL now: upstream URLs expire, so we keep the bytes ourselves."""
        resp = await self.request("GET", url, headers=headers or {})
        if resp.status_code != 200:
            raise UpstreamError(
                ErrorCode.upstream_error, f"{self.name}: result download failed with HTTP {resp.status_code}"
            )
        return GeneratedImage(data=resp.content, mime=resp.headers.get("content-type"))

    async def download_all(self, images: list[GeneratedImage]) -> list[GeneratedImage]:
        async def one(img: GeneratedImage) -> GeneratedImage:
            if img.data is not None or not img.url:
                return img
            got = await self.download(img.url)
            got.revised_prompt = img.revised_prompt
            return got

        return list(await asyncio.gather(*(one(i) for i in images)))
