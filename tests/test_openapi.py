"""The OpenAPI document and what it describes, against a real `imagegate serve --sandbox` on loopback.

The document is valid OpenAPI 3.1 and complete (bodies, query, path and header parameters,
answers and errors), its request schemas are the models that check requests, a client generated
from it makes images, Schemathesis finds no 5xx and no answer the document does not describe, and
/docs loads nothing from another host. Also the rules the document states: unknown body
fields (ignored by the OpenAI routes and apimodels, refused by the Omni API) and 405 with Allow.
"""

from __future__ import annotations

import re
import types
import typing
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from imagegate.api import schemas
from imagegate.api.dialects import apimodels, omni_models, openai_models
from imagegate.api.openapi import json_schema
from imagegate.api.uploads import UploadSlotRequest
from imagegate.api.validation import check
from imagegate.domain import GatewayError
from tests.conftest import ServerProc, decode
from tests.openapi_support import CLIENT_SCRIPT, generate_client, generator, schemathesis

CREATES = ["/v1/images/generations", "/v1/images/edits", "/v1/openai/images/generations", "/v1/openai/images/edits"]
BODYLESS = {
    "cancel_task",
    "rotate_webhook_secret",
    "admin_rotate_key",
    "admin_redeliver",
    "admin_cancel_task",
}  # POSTs that take no body by design
QUERY = {
    **{("post", path): {"async", "callback_url"} for path in CREATES},
    ("get", "/api/v1/images/generations"): {"task_id"},
    ("get", "/v1/tasks"): {"status", "model", "after", "limit"},
    ("get", "/v1/tasks/{task_id}/images/{index}/thumbnail"): {"size"},
    ("get", "/v1/files/{name}"): {"expires", "sig"},
    ("put", "/v1/uploads/{upload_id}"): {"expires", "sig"},
    ("get", "/v1/models"): {"all"},
    ("get", "/api/omni/models"): {"all"},
    ("get", "/admin/v1/usage"): {"from", "to", "group_by", "format"},
    ("get", "/admin/v1/tasks"): {"key_id", "model", "status", "from", "to", "after", "limit"},
}
REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "ImageGeneration": openai_models.ImageGeneration,
    "ImageGenerationForm": openai_models.ImageGenerationForm,
    "ImageEdit": openai_models.ImageEdit,
    "ImageEditForm": openai_models.ImageEditForm,
    "OmniCreate": omni_models.OmniCreate,
    "OmniFile": omni_models.OmniFile,
    "ApimodelsRequest": apimodels.ApimodelsRequest,
    "UploadSlotRequest": UploadSlotRequest,
}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    srv = ServerProc(tmp_path_factory.mktemp("openapi"), args=["--sandbox"]).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def key(gw: ServerProc) -> str:
    return gw.create_key()


@pytest.fixture(scope="module")
def doc(gw: ServerProc) -> dict[str, Any]:
    r = httpx.get(gw.url + "/openapi.json", timeout=30)
    assert r.status_code == 200, r.text
    document: dict[str, Any] = r.json()
    return document


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield method, path, op


def post(gw: ServerProc, key: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.post(gw.url + path, headers={"authorization": f"Bearer {key}"}, timeout=60, **kw)


# -- the document ---------------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    from openapi_spec_validator import validate

    assert doc["openapi"].startswith("3.1.")
    validate(doc)


def test_every_write_declares_its_body(doc: dict[str, Any]) -> None:
    for method, path, op in operations(doc):
        if method in ("post", "put", "patch") and op["operationId"] not in BODYLESS:
            assert op.get("requestBody", {}).get("content"), (method, path)
    for path in CREATES:  # JSON and multipart, each a named schema in components
        content = doc["paths"][path]["post"]["requestBody"]["content"]
        assert set(content) == {"application/json", "multipart/form-data"}, path
        for media in content.values():
            assert media["schema"]["$ref"].split("/")[-1] in doc["components"]["schemas"]
    form = doc["components"]["schemas"]["ImageEditForm"]["properties"]
    assert (
        form["image"]["items"] == {"type": "string", "format": "binary"}
        and "image" in doc["components"]["schemas"]["ImageEditForm"]["required"]
    )


def test_parameters_are_declared(doc: dict[str, Any]) -> None:
    for (method, path), names in QUERY.items():
        declared = {p["name"] for p in doc["paths"][path][method].get("parameters", []) if p["in"] == "query"}
        assert names <= declared, (method, path, declared)
    for method, path, op in operations(doc):
        in_path = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert in_path == set(re.findall(r"{(\w+)}", path)), (method, path)
        assert {"4XX", "5XX"} <= set(op["responses"]), (method, path)
        ok = [s for s in op["responses"] if s.startswith("2")]
        assert ok and all(op["responses"][s].get("content") for s in ok), (method, path)
    headers = {p["name"] for p in doc["paths"]["/v1/images/generations"]["post"]["parameters"] if p["in"] == "header"}
    assert headers == {"Idempotency-Key", "Prefer"}


def test_request_schemas_are_the_models_that_check_requests(doc: dict[str, Any]) -> None:
    components = doc["components"]["schemas"]
    for name, model in REQUEST_MODELS.items():
        expected = {k: v for k, v in json_schema(model).items() if k != "$defs"}
        assert components[name] == expected, name


def test_operations_that_need_a_key_say_so(doc: dict[str, Any]) -> None:
    public = {
        "omni_list_models",
        "gemini_list_models",
        "gemini_get_model",
        "health",
        "ready",
        "download_file",
        "put_upload",
        "list_models",
        "get_model",
    }
    for method, path, op in operations(doc):
        assert bool(op.get("security")) == (op["operationId"] not in public), (method, path)
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "x-api-key"}


# -- the pages ------------------------------------------------------------------------------------


def test_the_docs_page_loads_only_from_this_host(gw: ServerProc) -> None:
    html = httpx.get(gw.url + "/docs", timeout=30).text
    refs = re.findall(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)""", html)
    refs += re.findall(r"""\burl:\s*["']([^"']+)""", html)
    assert len(refs) >= 3, html
    assert not re.search(r"(?i)(https?:)?//[a-z0-9]", html), html  # no CDN, no fonts, no validator badge
    for ref in refs:
        assert ref.startswith("/") and not ref.startswith("//"), ref
        r = httpx.get(gw.url + ref, timeout=30)
        assert r.status_code == 200 and len(r.content) > 300, (ref, r.status_code)
    kinds = {httpx.get(gw.url + ref, timeout=30).headers["content-type"].split(";")[0] for ref in refs}
    assert "application/json" in kinds and ("text/javascript" in kinds or "application/javascript" in kinds)


def test_405_lists_every_allowed_method(gw: ServerProc) -> None:
    r = httpx.delete(gw.url + "/v1/images/generations")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["error"]["code"] == "method_not_allowed" and "POST" in r.json()["error"]["message"]
    r = httpx.put(gw.url + "/api/v1/images/generations")  # apimodels: POST creates, GET polls
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    r = httpx.post(gw.url + "/v1/tasks/img_x")
    assert r.status_code == 405 and r.headers["allow"] == "GET"


# -- the rules it states --------------------------------------------------------------------------


def test_unknown_fields_are_ignored_by_the_openai_routes_and_apimodels(gw: ServerProc, key: str) -> None:
    body = {"model": "test/test", "prompt": "x", "size": "64x64", "stream": False, "vendor": {"any": [1]}}
    r = post(gw, key, "/v1/images/generations", json=body)
    assert r.status_code == 200 and len(r.json()["data"]) == 1, r.text
    r = post(gw, key, "/v1/openai/images/edits", data={"model": "test/test", "prompt": "x", "size": "64x64", "x": "1"})
    assert r.status_code == 200, r.text
    r = post(gw, key, "/api/v1/images/generations", json={"model": "test/test", "prompt": "x", "watermark": True})
    assert r.status_code == 200 and r.json()["code"] == 200, r.text


@pytest.mark.parametrize(
    "extra,param",
    [
        ({"priority": "high"}, "priority"),
        ({"files_to_upload": [{"field": "x", "filename": "a.png", "content_type": "image/png", "size": 9}]},
         "files_to_upload[0].size"),
        ({"input": {"prompt": "x", "colour": "red"}}, "input.colour"),
    ],
)  # fmt: skip
def test_unknown_fields_are_refused_by_the_omni_api(
    gw: ServerProc, key: str, extra: dict[str, Any], param: str
) -> None:
    body = {"model_group": "test/test", "task_type": "text_to_image", "input": {"prompt": "x"}, **extra}
    r = post(gw, key, "/api/omni/tasks/create", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    assert f"'{param}'" in r.json()["error"]["message"], r.text


@pytest.mark.parametrize(
    "path,kw,param",
    [
        ("/v1/images/generations", {"json": {"model": "test/test", "prompt": "x", "async": "maybe"}}, "async"),
        ("/v1/images/generations?async=maybe", {"json": {"model": "test/test", "prompt": "x"}}, "async"),
        ("/v1/images/generations", {"json": {"model": "test/test", "prompt": "x", "response_format": 1}},
         "response_format"),
        ("/v1/images/edits", {"data": {"model": "test/test", "prompt": "x", "n": "two"}}, "n"),
        ("/api/omni/tasks/create", {"json": {"model_group": "test/test", "task_type": "text_to_image",
                                             "files_to_upload": ["a.png"]}}, "files_to_upload"),
        ("/api/omni/tasks/create", {"json": {"model_group": " ", "task_type": "text_to_image"}}, "model_group"),
    ],
)  # fmt: skip
def test_types_are_checked_and_named_as_sent(
    gw: ServerProc, key: str, path: str, kw: dict[str, Any], param: str
) -> None:
    r = post(gw, key, path, **kw)
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


@pytest.mark.parametrize(
    "model,data,param,says",
    [
        (apimodels.ApimodelsRequest, {"model": "m", "image_urls": [7]}, "image_urls", "'image_urls[0]' must be"),
        (apimodels.ApimodelsRequest, {"model": "m", "image_base64": [1]}, "image_base64", "a string or an array of"),
        (apimodels.ApimodelsRequest, {"model": "  "}, "model", "'model' must not be empty"),
        (omni_models.OmniCreate, {"model_group": "g", "task_type": "t", "files_to_upload": [{"filename": "a.png",
         "content_type": "image/png"}]}, "files_to_upload[0].field", "'files_to_upload[0].field' is required"),
        (omni_models.OmniCreate, {"model_group": "g", "task_type": "t", "files_to_upload": [{"field": "f",
         "filename": "a.png", "content_type": "text/html"}]}, "files_to_upload[0].content_type", "image/png"),
        (omni_models.OmniCreate, {"model_group": "g", "task_type": "t", "colour": 1}, "colour",
         "the parameters are: model_group, task_type, input"),
        (openai_models.ImageParams, {"model": "m", "response_format": "html"}, "response_format", "'b64_json'"),
        (openai_models.ImageParams, {"model": "m", "n": 11}, "n", "'n' must be at most 10"),
        (UploadSlotRequest, {"filename": "a", "content_type": "image/png", "size": True}, "size", "an integer"),
    ],
)  # fmt: skip
def test_refusals_name_the_clients_parameter(
    model: type[BaseModel], data: dict[str, Any], param: str, says: str
) -> None:
    with pytest.raises(GatewayError) as exc:
        check(model, data)
    assert exc.value.status == 400 and exc.value.param == param and says in exc.value.message, exc.value.message


def test_malformed_signed_links_are_403_not_500(gw: ServerProc, key: str) -> None:
    """Schemathesis' first find: a non-ASCII ``sig`` reached ``hmac.compare_digest`` (a TypeError, so a 500),
    and ``expires=²`` passes ``str.isdigit`` but not ``int``. The edge now refuses both as a wrong link."""
    slot = post(gw, key, "/v1/uploads", json={"filename": "a.png", "content_type": "image/png"}).json()
    file_url = post(gw, key, "/v1/images/generations", json={"model": "test/test", "prompt": "x"}).json()["data"][0]
    for base in (slot["upload_url"].split("?")[0], file_url["url"].split("?")[0]):
        for query in ({"expires": "9999999999", "sig": "\u00e9"}, {"expires": "\u00b2", "sig": "ab"}, {"sig": "ab"}):
            r = httpx.request("PUT" if "/uploads/" in base else "GET", base, params=query, content=b"x", timeout=30)
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (base, query, r.text)


def test_apimodels_errors_keep_their_envelope(gw: ServerProc, key: str) -> None:
    r = post(gw, key, "/api/v1/images/generations", json={"model": "test/test", "prompt": "x", "n": "many"})
    assert r.status_code == 400 and r.json()["param"] == "n" and r.json()["data"] is None, r.text
    r = httpx.get(gw.url + "/api/v1/images/generations?task_id=%20", headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 400 and r.json()["param"] == "task_id", r.text


# -- answers as documented ------------------------------------------------------------------------


def undocumented(model: type[BaseModel], data: Any, where: str = "") -> list[str]:
    """Keys in ``data`` that ``model`` (and the models inside it) do not declare."""
    if not isinstance(data, dict):
        return []
    fields = {f.alias or name: f.annotation for name, f in model.model_fields.items()}
    out = [f"{where}{k}" for k in data if k not in fields]
    for name, annotation in fields.items():
        value = data.get(name)
        for inner in _models(annotation):
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                out += undocumented(inner, item, f"{where}{name}[{i}].")
    return out


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (list, typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


def conforms(model: type[BaseModel], data: Any) -> None:
    model.model_validate(data)
    assert not undocumented(model, data), undocumented(model, data)


def test_answers_are_what_the_document_says(gw: ServerProc, key: str) -> None:
    auth = {"authorization": f"Bearer {key}"}
    sync = post(gw, key, "/v1/images/generations", json={"model": "test/test", "prompt": "x", "size": "64x64"})
    conforms(schemas.ImagesResponse, sync.json())
    queued = post(gw, key, "/v1/images/generations?async=true", json={"model": "test/test", "prompt": "x"})
    assert queued.status_code in (200, 202)
    conforms(schemas.TaskObject, queued.json())
    listed = httpx.get(gw.url + "/v1/tasks", headers=auth, timeout=30).json()
    conforms(schemas.TaskList, listed)
    assert any(t["status"] == "succeeded" and t["data"] for t in listed["data"])
    omni = post(gw, key, "/api/omni/tasks/create", json={"model_group": "test/test", "task_type": "text_to_image",
                                                         "input": {"prompt": "x"}})  # fmt: skip
    conforms(omni_models.OmniTask, omni.json())
    conforms(omni_models.OmniModels, httpx.get(gw.url + "/api/omni/models", timeout=30).json())
    conforms(
        apimodels.ApimodelsEnvelope, post(gw, key, "/api/v1/images/generations", json={"model": "test/test"}).json()
    )
    conforms(schemas.ErrorResponse, post(gw, key, "/v1/images/generations", json={"prompt": "x"}).json())
    conforms(schemas.ModelList, httpx.get(gw.url + "/v1/models?all=true", timeout=30).json())
    conforms(schemas.Readiness, httpx.get(gw.url + "/ready", timeout=30).json())
    slot = post(gw, key, "/v1/uploads", json={"filename": "a.png", "content_type": "IMAGE/PNG"})
    assert slot.status_code == 201 and slot.json()["content_type"] == "image/png"
    conforms(schemas.UploadSlotObject, slot.json())
    done = httpx.put(slot.json()["upload_url"], content=sync_png(gw, key), timeout=30)
    conforms(schemas.UploadReceived, done.json())


def sync_png(gw: ServerProc, key: str) -> bytes:
    r = post(gw, key, "/v1/images/generations", json={"model": "test/test", "prompt": "x", "size": "64x64"})
    return httpx.get(r.json()["data"][0]["url"], timeout=30).content


# -- tools that read the document ----------------------------------------------------------------


def test_a_generated_client_makes_images(
    gw: ServerProc, key: str, doc: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import json
    import subprocess

    exe, python = generator(Path(request.config.cache.mkdir("openapi-python-client")))
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(doc))
    generate_client(exe, document, tmp_path)
    out = tmp_path / "first.png"
    done = subprocess.run(
        [str(python), "-c", CLIENT_SCRIPT, str(tmp_path), gw.url, key, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert decode(out.read_bytes()).size == (96, 64)


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    gw: ServerProc, key: str, tmp_path: Path
) -> None:
    report = tmp_path / "junit.xml"
    done = schemathesis(gw.url, key, report, max_examples=12, seed=20240601)
    tail = (done.stdout + done.stderr)[-8000:]
    assert done.returncode == 0, tail
    suite = ET.parse(report).getroot()
    cases = suite.findall(".//testcase")
    failed = [c.get("name") for c in cases if c.find("failure") is not None or c.find("error") is not None]
    assert len(cases) >= 20 and not failed, (len(cases), failed, tail)
