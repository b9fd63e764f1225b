"""Files under the data dir, written atomically (temp file + rename) so a crash leaves no half image.

No folder is assumed to exist: an operator may clear ``outputs/`` (or the whole files dir) under a
running server, so a write that finds its folder gone makes it and tries once more. Trying first
costs nothing on the common path, where the folder is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from pathlib import Path

from imagegate.storage.base import check_key


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def local_path(self, key: str) -> str | None:
        p = self._path(key)
        return str(p) if p.exists() else None

    def _write(self, key: str, data: bytes) -> None:
        p = self._path(key)
        try:
            _write_atomic(p, data)
        except FileNotFoundError:  # the folder is new, or was deleted under us
            p.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(p, data)

    async def put(self, key: str, data: bytes, mime: str) -> None:
        await asyncio.to_thread(self._write, key, data)

    async def get(self, key: str) -> bytes | None:
        p = self._path(key)
        try:
            return await asyncio.to_thread(p.read_bytes)
        except FileNotFoundError:
            return None

    async def presigned_url(self, key: str, *, expires_in: int, content_type: str) -> str | None:
        return None  # the download route streams local_path itself

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def ping(self) -> None:
        await asyncio.to_thread(self._write, ".ready", b"ok")

    async def aclose(self) -> None:
        return None


def _write_atomic(p: Path, data: bytes) -> None:
    tmp = p.with_name(f".{p.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # a full disk must not also fill up with temp files
        raise
