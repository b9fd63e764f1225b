"""An OpenAI-shaped image upstream for load tests: one pre-generated 1024x1024 noise PNG.

``POST /v1/images/generations`` answers ``b64_json`` (the default, like gpt-image) or ``url``
(``response_format: url``) pointing at ``GET /blobs/noise.png``. The bodies are built once at
start, so the upstream spends as little CPU per request as an upstream can; what a gateway adds
on top is then easy to see. Run: ``python -m bench.fake_upstream --port 8101``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import time
from typing import Any

from bench.asgi import lifespan, read_body, send_bytes

SEED = 1234


def noise_png(width: int = 1024, height: int = 1024, seed: int = SEED) -> bytes:
    """RGB noise with 6 random bits per channel: incompressible enough to land at ~2 MB."""
    from PIL import Image

    rnd = random.Random(seed)
    raw = rnd.randbytes(width * height * 3).translate(bytes(i & 0xFC for i in range(256)))
    img = Image.frombytes("RGB", (width, height), raw)
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def build_app(png: bytes, port: int) -> Any:
    b64 = base64.b64encode(png).decode()
    url = f"http://127.0.0.1:{port}/blobs/noise.png"
    usage = {"input_tokens": 10, "output_tokens": 4160, "total_tokens": 4170}

    def body(fmt: str, n: int) -> bytes:
        item = {"url": url} if fmt == "url" else {"b64_json": b64}
        return json.dumps({"created": int(time.time()), "data": [item] * n, "usage": usage}).encode()

    prebuilt = {"b64_json": body("b64_json", 1), "url": body("url", 1)}
    counters = {"requests": 0}
    json_hdr = [(b"content-type", b"application/json")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        path, method = scope["path"], scope["method"]
        if method == "POST" and path.endswith("/images/generations"):
            counters["requests"] += 1
            try:
                req = json.loads(await read_body(receive) or b"{}")
            except ValueError:
                return await send_bytes(
                    send, 400, b'{"error":{"message":"invalid JSON","type":"invalid_request_error"}}', json_hdr
                )
            if not req.get("prompt"):
                return await send_bytes(
                    send,
                    400,
                    b'{"error":{"message":"prompt is required","param":"prompt","type":"invalid_request_error"}}',
                    json_hdr,
                )
            fmt = "url" if req.get("response_format") == "url" else "b64_json"
            n = int(req.get("n") or 1)
            data = prebuilt[fmt] if n == 1 else body(fmt, max(1, min(n, 10)))
            return await send_bytes(send, 200, data, json_hdr)
        if method == "GET" and path == "/blobs/noise.png":
            return await send_bytes(send, 200, png, [(b"content-type", b"image/png")])
        if path in ("/health", "/v1/health"):
            return await send_bytes(send, 200, json.dumps(counters).encode(), json_hdr)
        await send_bytes(send, 404, b'{"error":{"message":"not found"}}', json_hdr)

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--size", type=int, default=1024)
    args = ap.parse_args()
    import uvicorn

    png = noise_png(args.size, args.size)
    print(f"fake upstream: {len(png)} byte PNG, pid {os.getpid()}", flush=True)
    uvicorn.run(
        build_app(png, args.port),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
