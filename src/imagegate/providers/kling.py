"""Kling (Kuaishou) image generation: JWT-signed async tasks.

Auth is a short-lived HS256 JWT (``iss`` = access key, ``exp`` = now + 30 min, ``nbf`` = now - 5 s)
signed with the secret key. Two task families share one envelope
``{code, message, request_id, data: {task_id, task_status, task_status_msg, task_result}}``:
``/v1/images/generations`` (kling-v1 ... v2-1: one ``image``, raw base64 without a ``data:``
prefix, or URL) and ``/v1/images/omni-image`` (kling-image-o1, kling-v3-omni: ``image_list``,
1k/2k/4k). ``n`` is 1-9 per task; statuses are submitted / processing / succeed / failed.

Sizing is by ``aspect_ratio`` + lower-case ``resolution``: the ratio and tier validation accepted
against the model's catalog ``aspect_ratios`` / ``resolutions``, as they are.

Submit exactly once: each create carries ``external_task_id`` (the task's reference; Kling wants it
unique in the account and echoes it in ``data.task_info``). The single query takes either id
("choose between task_id and external_task_id"), so :meth:`KlingProvider.find` asks for
``{path}/{reference}``; since that reading is the riskier one to get wrong (a miss means a second
submit), a not-found there is confirmed in the list (``?pageNum=&pageSize=``, whose items carry
``task_info.external_task_id``), and only an exhausted list says "never received".
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import httpx
import jwt
from jwt.warnings import InsecureKeyLengthWarning

from imagegate.domain import ErrorCode, GeneratedImage, ImageRequest, ProviderResult, UpstreamError
from imagegate.providers.base import PollResult, Provider
from imagegate.providers.toolkit import CodeMap, aspect_and_tier, exactly, image_ref, json_body, retry_after_of

#: Kling's business codes -> our error classes (they say more than the HTTP status)
CODES = CodeMap.of(
    "kling",
    (exactly("1000", "1001", "1002", "1003", "1004"), ErrorCode.upstream_auth),  # auth failed ... token expired
    (exactly("1100", "1103", "1304"), ErrorCode.upstream_auth),  # account, resource permission, IP allow-list
    (exactly("1101", "1102"), ErrorCode.upstream_quota),  # arrears / resource pack exhausted
    (exactly("1200", "1201", "1202", "1203"), ErrorCode.upstream_bad_request),
    (exactly("1300", "1301"), ErrorCode.content_policy_violation),
    (exactly("1302", "1303"), ErrorCode.upstream_rate_limited),  # rate / concurrency over limit
    (exactly("5000"), ErrorCode.upstream_error),
    (exactly("5001"), ErrorCode.upstream_unavailable),
    (exactly("5002"), ErrorCode.upstream_timeout),
)

PAGE, LIST_PAGES = 500, 4  # the list's largest page; how far back a lookup looks before it gives up
NOT_FOUND = "1203"  # "the requested resource does not exist"


def kling_error(resp: httpx.Response, body: dict[str, Any]) -> UpstreamError:
    code = body.get("code")
    if code is None:
        return CODES.error(resp.status_code, None, f"HTTP {resp.status_code}", retry_after=retry_after_of(resp))
    return CODES.error(resp.status_code, code, str(body.get("message") or ""), retry_after=retry_after_of(resp))


class KlingProvider(Provider):
    name = "kling"
    kind = "poll"
    default_base_url = "https://api-singapore.klingai.com"
    credential_names = ("access_key", "secret_key")

    def _token(self) -> str:
        now = int(time.time())
        payload = {"iss": self.credential("access_key"), "exp": now + 1800, "nbf": now - 5}
        with warnings.catch_warnings():  # the key length is Kling's choice, not ours
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            return jwt.encode(payload, self.credential("secret_key"), algorithm="HS256", headers={"typ": "JWT"})

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token()}", "Content-Type": "application/json"}

    @property
    def _omni(self) -> bool:
        return (
            self.deployment.options.get("endpoint") == "omni-image"
            or "omni" in self.deployment.model
            or self.deployment.model.startswith("kling-image-o")
        )

    @property
    def _path(self) -> str:
        return "/v1/images/omni-image" if self._omni else "/v1/images/generations"

    # -- parameter map -------------------------------------------------------------------
    def _body(self, req: ImageRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model_name": self.deployment.model, "prompt": req.prompt, "n": req.n}
        ratio, tier = aspect_and_tier(self.spec, req)
        if ratio is not None:
            body["aspect_ratio"] = ratio
        if tier is not None:
            body["resolution"] = tier.lower()
        if self._omni:
            if req.images:  # a URL or raw base64, no ``data:`` prefix
                body["image_list"] = [{"image": image_ref(i, "base64")} for i in req.images]
            if req.negative_prompt:
                body["negative_prompt"] = req.negative_prompt
        else:
            if req.images:
                body["image"] = image_ref(req.images[0], "base64")
            elif req.negative_prompt:  # Kling ignores negative_prompt with an image reference
                body["negative_prompt"] = req.negative_prompt
        return body

    # -- submit / poll -------------------------------------------------------------------
    async def _call(self, method: str, url: str, **kw: Any) -> dict[str, Any]:
        resp = await self.request(method, url, headers=self._headers(), **kw)
        body = json_body(resp) or {"message": resp.text[:200]}
        if resp.status_code != 200 or body.get("code") not in (0, None):
            raise kling_error(resp, body)
        return body.get("data") or {}

    async def submit(self, req: ImageRequest, reference: str | None = None) -> dict[str, Any]:
        body = self._body(req)
        if reference:
            body["external_task_id"] = reference
        data = await self._call("POST", f"{self.base_url}{self._path}", json=body)
        if not data.get("task_id"):
            raise UpstreamError(ErrorCode.upstream_error, "kling: submit answer has no task_id")
        return {"task_id": data["task_id"], "path": self._path}

    async def _get(self, url: str, **params: int) -> tuple[httpx.Response, dict[str, Any]]:
        resp = await self.request("GET", url, headers=self._headers(), params=params or None)
        return resp, json_body(resp) or {"message": resp.text[:200]}

    async def find(self, reference: str, req: ImageRequest) -> dict[str, Any] | None:
        url = f"{self.base_url}{self._path}"
        resp, body = await self._get(f"{url}/{reference}")
        data = body.get("data") or {}
        if resp.status_code == 200 and body.get("code") == 0:
            if data.get("task_id") and (data.get("task_info") or {}).get("external_task_id") == reference:
                return {"task_id": data["task_id"], "path": self._path}
        elif str(body.get("code")) != NOT_FOUND:
            raise kling_error(resp, body)
        for page in range(1, LIST_PAGES + 1):  # not there by that id: the list is the last word
            resp, body = await self._get(url, pageNum=page, pageSize=PAGE)
            if resp.status_code != 200 or body.get("code") != 0:
                raise kling_error(resp, body)
            items = body.get("data") or []
            for item in items:
                if (item.get("task_info") or {}).get("external_task_id") == reference and item.get("task_id"):
                    return {"task_id": item["task_id"], "path": self._path}
            if len(items) < PAGE:
                return None
        raise UpstreamError(
            ErrorCode.upstream_unavailable, f"kling: {reference} is not among the newest {LIST_PAGES * PAGE} tasks"
        )

    async def poll(self, handle: dict[str, Any]) -> PollResult:
        data = await self._call("GET", f"{self.base_url}{handle.get('path', self._path)}/{handle['task_id']}")
        status = data.get("task_status")
        if status == "submitted":
            return PollResult(done=False, progress=0)
        if status == "processing":
            return PollResult(done=False, progress=50)
        if status == "failed":
            msg = str(data.get("task_status_msg") or "task failed")
            moderated = any(w in msg.lower() for w in ("risk", "sensitive", "policy", "inappropriate", "violat"))
            code = ErrorCode.content_policy_violation if moderated else ErrorCode.upstream_error
            raise UpstreamError(code, f"kling: {msg}")
        if status != "succeed":
            return PollResult(done=False)
        images = sorted((data.get("task_result") or {}).get("images") or [], key=lambda i: i.get("index", 0))
        if not images:
            raise UpstreamError(ErrorCode.upstream_error, "kling: task succeeded without images")
        got = await self.download_all([GeneratedImage(url=i["url"]) for i in images])
        return PollResult(
            done=True,
            progress=100,
            result=ProviderResult(images=got, usage={"final_unit_deduction": data.get("final_unit_deduction")}),
        )
