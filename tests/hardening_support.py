"""Test parts for the hardening tests: a decompression bomb, a loopback host that counts its hits, memory."""

from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image


def zero_png(width: int, height: int, mode: str = "RGBA") -> bytes:
    """A PNG of zeros: a few hundred KB that decode to ``width * height * 4`` bytes."""
    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, "PNG", compress_level=9)
    return buf.getvalue()


def memory_kb(pid: int) -> tuple[int, int]:
    """(resident now, resident at its peak) of a process, in kB, from /proc."""
    fields = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


class RecordingHost:
    """A loopback HTTP server that serves fixed bytes per path and records every request it gets."""

    def __init__(self, files: dict[str, bytes] | None = None, address: str = "127.0.0.1", port: int = 0) -> None:
        self.files = dict(files or {})
        self.hits: list[tuple[str, str]] = []  # (path, Host header)
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                host.hits.append((self.path, self.headers.get("host", "")))
                body = host.files.get(self.path.partition("?")[0])
                self.send_response(200 if body is not None else 404)
                self.send_header("content-type", "image/png")
                self.send_header("content-length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{address}:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
