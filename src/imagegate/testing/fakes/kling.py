"""A fake of Kling's image API (api-singapore.klingai.com / api-beijing.klingai.com).

Imitates: the HS256 JWT bearer token, checked for real (signature with the secret key of the
``iss`` access key, ``exp``, ``nbf``) with Kling's 1001-1004 codes; ``/v1/images/generations``
and ``/v1/images/omni-image`` (create + query by task id); raw-base64 (no ``data:``) or URL
images; ``resolution`` 1k/2k (4k on kling-v3-omni), ``aspect_ratio``, ``n`` 1-9; task states
submitted -> processing -> succeed / failed (``task_status_msg``) advancing per query; the
``{code, message, request_id, data}`` envelope with Kling's business codes; 30-day result URLs.
``external_task_id`` on create, echoed in ``data.task_info``; the single query answers to either the
task id or the external one ("choose between task_id and external_task_id"); the list
(``?pageNum=`` 1-1000, ``pageSize=`` 1-500, default 1 and 30) is newest first and its items carry
``task_info.external_task_id``. Assumed, not documented: a second create with an external id the
account already used is refused with 1201 (the docs only say it must be unique in the account).
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
import warnings
from functools import partial
from typing import Any

import jwt
from fastapi import FastAPI
from jwt.warnings import InsecureKeyLengthWarning
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imagegate.testing.fakes.server import Endpoint, fake_app
from imagegate.testing.fakes.state import FakeState, Job, trigger

PROVIDER = "kling"
TTL = 30 * 86400.0
GEN_MODELS = {"kling-v1", "kling-v1-5", "kling-v2", "kling-v2-new", "kling-v2-1", "kling-v3"}
OMNI_MODELS = {"kling-image-o1", "kling-v3-omni"}
# output pixels at 1k per aspect ratio (2k doubles, 4k quadruples each side)
DIMS_1K = {
    "1:1": (1024, 1024),
    "16:9": (1360, 768),
    "9:16": (768, 1360),
    "4:3": (1168, 880),
    "3:4": (880, 1168),
    "3:2": (1248, 832),
    "2:3": (832, 1248),
    "21:9": (1552, 656),
}
SCALE = {"1k": 1, "2k": 2, "4k": 4}


def _env(code: int, message: str, data: Any = None, status: int = 200) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, "request_id": str(uuid.uuid4())}
    if data is not None:
        body["data"] = data
    return JSONResponse(body, status)


def _bad(message: str) -> JSONResponse:
    return _env(1201, message, status=400)


def _valid_image(ref: Any) -> str | None:
    if not isinstance(ref, str) or not ref:
        return "image is empty"
    if ref.startswith(("http://", "https://")):
        return None
    if ref.startswith("data:"):
        return "image base64 must not carry a data: prefix"
    try:
        base64.b64decode(ref, validate=True)
    except binascii.Error:
        return "image is neither a URL nor valid base64"
    return None


async def jwt_auth(request: Request, state: FakeState) -> Response | None:
    """Kling's HS256 token: signed with the secret key of the access key named in ``iss``."""
    header = request.headers.get("authorization", "")
    if not header:
        return _env(1001, "Authorization is empty", status=401)
    if not header.startswith("Bearer "):
        return _env(1002, "Authorization is invalid", status=401)
    secrets_by_ak = {state.api_key: state.api_key}  # access key -> secret key
    with warnings.catch_warnings():  # sandbox secrets are short on purpose
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        try:
            iss = jwt.decode(header[7:], options={"verify_signature": False}).get("iss")
            sk = secrets_by_ak.get(iss or "")
            if sk is None:
                return _env(1000, "Authentication failed: access key not found", status=401)
            jwt.decode(header[7:], sk, algorithms=["HS256"], options={"require": ["iss", "exp", "nbf"]})
        except jwt.ExpiredSignatureError:
            return _env(1004, "Authorization has expired", status=401)
        except jwt.ImmatureSignatureError:
            return _env(1003, "Authorization is not yet valid", status=401)
        except jwt.PyJWTError:
            return _env(1002, "Authorization is invalid", status=401)
    return None


def check(body: dict[str, Any], omni: bool) -> JSONResponse | tuple[int, int, int]:
    model = body.get("model_name", "kling-image-o1" if omni else "kling-v1")
    if model not in (OMNI_MODELS if omni else GEN_MODELS):
        return _bad(f"model_name is invalid: {model}")
    if not body.get("prompt"):
        return _bad("prompt is required")
    res = body.get("resolution", "1k")
    if res not in ({"1k", "2k", "4k"} if model == "kling-v3-omni" else {"1k", "2k"}):
        return _bad(f"resolution is invalid: {res}")
    ratio = body.get("aspect_ratio", "16:9")
    if ratio not in DIMS_1K:
        return _bad(f"aspect_ratio is invalid: {ratio}")
    n = body.get("n", 1)
    if not isinstance(n, int) or not 1 <= n <= 9:
        return _bad("n must be in [1, 9]")
    refs = (
        [i.get("image") if isinstance(i, dict) else None for i in body.get("image_list") or []]
        if omni
        else ([body["image"]] if "image" in body else [])
    )
    for ref in refs:
        if (problem := _valid_image(ref)) is not None:
            return _bad(problem)
    w, h = DIMS_1K[ratio]
    return w * SCALE[res], h * SCALE[res], n


async def create(request: Request, state: FakeState, *, omni: bool) -> Response:
    try:
        body = await request.json()
    except ValueError:
        return _env(1200, "Invalid request parameters", status=400)
    checked = check(body, omni)
    if isinstance(checked, JSONResponse):
        return checked
    t = trigger(body["prompt"])
    if t == "moderated":
        return _env(1301, "Trigger the content security policy", status=400)
    if t == "rate-limit":
        return _env(1302, "API request too fast, please slow down", status=429)
    external = body.get("external_task_id") or ""
    if external and any(j["external"] == external for j in state.jobs.values() if "external" in j):
        return _bad(f"external_task_id already exists: {external}")
    state.submitted()
    now = int(time.time() * 1000)
    task_id = str(uuid.uuid4().int)[:18]
    state.jobs[task_id] = {
        "external": external,
        "omni": omni,
        "body": body,
        "dims": checked,
        "status": "submitted",
        "created_at": now,
        "updated_at": now,
    }
    return _env(
        0,
        "SUCCEED",
        {
            "task_id": task_id,
            "task_status": "submitted",
            "task_info": {"external_task_id": external},
            "created_at": now,
            "updated_at": now,
        },
    )


async def finish(state: FakeState, job: Job) -> None:
    w, h, n = job["dims"]
    prompt = job["body"]["prompt"]
    if trigger(prompt) == "error":
        job["status"], job["msg"] = "failed", "Internal server error, please try again later"
        return
    await state.work(n)
    job["images"] = [
        {"index": i, "url": state.link(state.image(prompt, w, h, "png", index=i), "image/png", ttl=TTL)}
        for i in range(n)
    ]
    job["status"] = "succeed"


def _lookup(state: FakeState, key: str, omni: bool) -> tuple[str, Job] | None:
    """A task by its id or by the external id it was created with."""
    for task_id, job in state.jobs.items():
        if (task_id == key or (job.get("external") and job["external"] == key)) and job["omni"] == omni:
            return task_id, job
    return None


def _view(task_id: str, job: Job) -> dict[str, Any]:
    data: dict[str, Any] = {
        "task_id": task_id,
        "task_status": job["status"],
        "task_status_msg": job.get("msg", ""),
        "created_at": job["created_at"],
        "updated_at": job["updated_at"],
        "task_info": {"external_task_id": job["external"]} if job.get("external") else {},
    }
    if job["status"] == "succeed":
        data["task_result"] = {"images": job["images"]}
        data["final_unit_deduction"] = str(len(job["images"]))
    return data


async def listing(request: Request, state: FakeState, *, omni: bool) -> Response:
    try:
        page = int(request.query_params.get("pageNum", "1"))
        size = int(request.query_params.get("pageSize", "30"))
    except ValueError:
        return _bad("pageNum and pageSize must be integers")
    if not 1 <= page <= 1000 or not 1 <= size <= 500:
        return _bad("pageNum must be in [1, 1000] and pageSize in [1, 500]")
    mine = [(t, j) for t, j in state.jobs.items() if j["omni"] == omni]
    mine.sort(key=lambda tj: tj[1]["created_at"], reverse=True)
    return _env(0, "SUCCEED", [_view(t, j) for t, j in mine[(page - 1) * size : page * size]])


async def query(request: Request, state: FakeState, *, omni: bool) -> Response:
    found = _lookup(state, request.path_params["task_id"], omni)
    if found is None:
        return _env(1203, "The requested resource does not exist", status=404)
    task_id, job = found
    if job["status"] in ("submitted", "processing"):
        job["updated_at"] = int(time.time() * 1000)
        if (stage := state.advance(task_id, "submitted", "processing")) is None:
            await finish(state, job)
        else:
            job["status"] = stage
    return _env(0, "SUCCEED", _view(task_id, job))


ROUTES = (
    Endpoint("POST", "/v1/images/generations", partial(create, omni=False)),
    Endpoint("GET", "/v1/images/generations", partial(listing, omni=False), count="list", count_after_auth=True),
    Endpoint(
        "GET", "/v1/images/generations/{task_id}", partial(query, omni=False), count="poll", count_after_auth=True
    ),
    Endpoint("POST", "/v1/images/omni-image", partial(create, omni=True)),
    Endpoint("GET", "/v1/images/omni-image", partial(listing, omni=True), count="list", count_after_auth=True),
    Endpoint("GET", "/v1/images/omni-image/{task_id}", partial(query, omni=True), count="poll", count_after_auth=True),
)


def create_app(state: FakeState) -> FastAPI:
    return fake_app(state, ROUTES, auth=jwt_auth)
