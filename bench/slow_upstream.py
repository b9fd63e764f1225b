"""A fal-shaped queue upstream whose every job takes ``--job-seconds`` (for the async capacity run).

Wire format as in :mod:`imagegate.testing.fakes.fal` (submit on the model path; status, result
on ``{owner}/{alias}/requests/{id}``), cut to what a long-running job needs, on a bare ASGI app
so that 1,000 polls a second cost the fake little. ``GET /stats`` reports submitted, finished
(result fetched), in flight now and at peak, and polls.
Run: ``python -m bench.slow_upstream --port 8102 --job-seconds 60``.
"""

from __future__ import annotations

import argparse
import io
import json
import secrets
import time
from typing import Any

from bench.asgi import lifespan, read_body, send_bytes


def flat_png(size: int = 1024) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), (40, 90, 160)).save(buf, "PNG")
    return buf.getvalue()


def build_app(port: int, job_seconds: float) -> Any:
    png = flat_png()
    base = f"http://127.0.0.1:{port}"
    jobs: dict[str, float] = {}  # request id -> time it is done
    fetched: set[str] = set()
    stats = {"submitted": 0, "finished": 0, "in_flight": 0, "peak_in_flight": 0, "polls": 0}
    hdr = [(b"content-type", b"application/json")]

    async def send_json(send: Any, status: int, obj: Any, ctype: list | None = None) -> None:
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        await send_bytes(send, status, data, ctype or hdr)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        path, method = scope["path"], scope["method"]
        if method == "GET" and path == "/stats":
            return await send_json(send, 200, stats)
        if method == "GET" and path == "/blob.png":
            return await send_json(send, 200, png, [(b"content-type", b"image/png")])
        if "/requests/" in path:
            app_path, _, rest = path.strip("/").partition("/requests/")
            rid, _, sub = rest.partition("/")
            done_at = jobs.get(rid)
            if done_at is None:
                return await send_json(send, 404, {"detail": "Request not found"})
            url = f"{base}/{app_path}/requests/{rid}"
            if sub == "status":
                stats["polls"] += 1
                if time.monotonic() < done_at:
                    return await send_json(send, 202, {"status": "IN_PROGRESS", "response_url": url, "logs": []})
                return await send_json(send, 200, {"status": "COMPLETED", "response_url": url, "logs": []})
            if time.monotonic() < done_at:
                return await send_json(send, 400, {"detail": "Request is still in progress"})
            if rid not in fetched:  # results stay fetchable (a retried fetch must not 404, as on fal)
                fetched.add(rid)
                stats["finished"] += 1
                stats["in_flight"] -= 1
            return await send_json(
                send,
                200,
                {
                    "images": [{"url": f"{base}/blob.png", "width": 1024, "height": 1024, "content_type": "image/png"}],
                    "seed": 42,
                    "has_nsfw_concepts": [False],
                },
            )
        if method == "POST":
            body = await read_body(receive)
            try:
                inp = json.loads(body or b"{}")
            except ValueError:
                return await send_json(send, 400, {"detail": "Invalid JSON body"})
            if not inp.get("prompt"):
                return await send_json(
                    send,
                    422,
                    {"detail": [{"loc": ["body", "prompt"], "msg": "field required", "type": "value_error.missing"}]},
                )
            rid = secrets.token_hex(12)
            jobs[rid] = time.monotonic() + job_seconds
            stats["submitted"] += 1
            stats["in_flight"] += 1
            stats["peak_in_flight"] = max(stats["peak_in_flight"], stats["in_flight"])
            app_path = "/".join(path.strip("/").split("/")[:2])
            url = f"{base}/{app_path}/requests/{rid}"
            return await send_json(
                send,
                200,
                {"request_id": rid, "response_url": url, "status_url": f"{url}/status", "cancel_url": f"{url}/cancel"},
            )
        await send_json(send, 404, {"detail": "Not Found"})

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--job-seconds", type=float, default=30.0)
    args = ap.parse_args()
    import uvicorn

    uvicorn.run(
        build_app(args.port, args.job_seconds),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
