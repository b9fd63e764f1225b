"""Files under the data dir, written atomically (temp file + rename) so a crash leaves no half image."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._dirs: set[Path] = set()  # folders known to exist

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"bad storage key {key!r}")  # keys are ours; this guards against misuse
        return self.root.joinpath(*parts)

    def local_path(self, key: str) -> str | None:
        p = self._path(key)
        return str(p) if p.exists() else None

    def _write(self, key: str, data: bytes) -> None:
        p = self._path(key)
        if p.parent not in self._dirs:
            p.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(p.parent)
        tmp = p.with_name(f".{p.name}.{secrets.token_hex(4)}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, p)

    async def put(self, key: str, data: bytes, mime: str) -> None:
        await asyncio.to_thread(self._write, key, data)

    async def get(self, key: str) -> bytes | None:
        p = self._path(key)
        if not p.exists():
            return None
        return await asyncio.to_thread(p.read_bytes)

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def ping(self) -> None:
        probe = self.root / ".ready"
        await asyncio.to_thread(probe.write_bytes, b"ok")
