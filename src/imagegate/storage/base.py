"""Where image bytes live. Local disk now; the same interface admits S3-style object stores."""

from __future__ import annotations

from typing import Protocol


class Storage(Protocol):
    async def put(self, key: str, data: bytes, mime: str) -> None: ...

    async def get(self, key: str) -> bytes | None: ...

    def local_path(self, key: str) -> str | None:
        """A filesystem path to stream from, when the store is local (None otherwise)."""
        ...

    async def delete(self, key: str) -> None: ...

    async def ping(self) -> None: ...
