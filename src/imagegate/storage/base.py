"""Where image bytes live: local disk (embedded profile) or an S3-compatible bucket (cluster profile).

The engine and the routes see only :class:`Storage`, so one code path serves both profiles.
Keys are ours (see ``layout.py``), relative and ``/``-separated; every store refuses anything else
with the same check, so a bug can never turn a key into a path outside the store.
"""

from __future__ import annotations

from typing import Protocol


class StorageError(OSError):
    """The store could not read or write. An ``OSError`` so that a remote store fails the way a local
    disk does, and callers need one ``except`` for both."""


class Storage(Protocol):
    async def put(self, key: str, data: bytes, mime: str) -> None:
        """Store ``data`` whole under ``key`` (replacing what was there); readers never see half of it."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The bytes under ``key``, or None when there are none."""
        ...

    def local_path(self, key: str) -> str | None:
        """A filesystem path to stream from, when the store is local (None otherwise)."""
        ...

    async def presigned_url(self, key: str, *, expires_in: int, content_type: str) -> str | None:
        """A URL a client can GET for ``expires_in`` seconds without our credentials, served as
        ``content_type``; None when the store hands none out (local disk, or an object store that clients
        cannot reach): the download route then streams the bytes itself."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; a key that is already gone is not an error."""
        ...

    async def ping(self) -> None:
        """Raise unless the store can be written now (the readiness probe)."""
        ...

    async def aclose(self) -> None:
        """Release connections; the process is stopping."""
        ...


def check_key(key: str) -> str:
    """The key, if it is one of ours: relative, no empty, ``.`` or ``..`` parts."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad storage key {key!r}")  # keys are ours; this guards against misuse
    return key
