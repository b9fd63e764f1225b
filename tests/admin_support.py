"""Test parts for the admin API: a server with the priced test model, its admin key, and a small client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_CATALOG, ServerProc

#: every admin route (method, path); ``{key}`` and ``{task}`` stand for real ids
ROUTES = [
    ("POST", "/admin/v1/keys"),
    ("GET", "/admin/v1/keys"),
    ("GET", "/admin/v1/keys/{key}"),
    ("PATCH", "/admin/v1/keys/{key}"),
    ("DELETE", "/admin/v1/keys/{key}"),
    ("POST", "/admin/v1/keys/{key}/rotate"),
    ("GET", "/admin/v1/usage"),
    ("GET", "/admin/v1/tasks"),
    ("POST", "/admin/v1/tasks/{task}/cancel"),
    ("GET", "/admin/v1/tasks/{task}/deliveries"),
    ("POST", "/admin/v1/tasks/{task}/deliveries/msg_x/redeliver"),
    ("GET", "/admin/v1/models"),
]


class Api:
    """Calls with one key (or none); every answer is returned, never raised."""

    def __init__(self, srv: ServerProc, key: str | None) -> None:
        self.srv = srv
        self.key = key

    def __call__(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.key}"} if self.key else {}
        return httpx.request(method, self.srv.url + path, headers=headers, timeout=60, **kw)

    def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        r = self(method, path, **kw)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        return r.json()

    def generate(self, model: str = "test/test", **body: Any) -> httpx.Response:
        return self("POST", "/v1/images/generations", json={"model": model, "prompt": "x", "size": "64x64", **body})

    def new_key(self, **body: Any) -> tuple[str, str]:
        """(id, secret) of a key created through the admin API."""
        made = self.ok("POST", "/admin/v1/keys", 201, json={"name": "k", **body})
        return made["id"], made["secret"]


def bad_request(r: httpx.Response, param: str) -> None:
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error" and err["message"], r.text


def start_server(tmp_path_factory: pytest.TempPathFactory) -> ServerProc:
    """A server with the priced test model; tasks awaiting uploads expire after a second (a quick failure)."""
    env = {"IMAGEGATE_ALLOW_PRIVATE_NETWORKS": "1", "IMAGEGATE_AWAITING_UPLOAD_TTL": "1", "OPENAI_API_KEY": ""}
    return ServerProc(tmp_path_factory.mktemp("admin"), env=env, args=["--config", str(TEST_CATALOG)]).start()


def admin_api(srv: ServerProc) -> Api:
    """The first key, made an admin by the CLI (as ``make serve`` does)."""
    return Api(srv, srv.create_key(name="root", extra=["--admin"]))


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    """A module's server (``start_server``); a module importing ``gw`` and ``admin`` shares it."""
    srv = start_server(tmp_path_factory)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def admin(gw: ServerProc) -> Api:
    """The admin key of whichever ``gw`` the requesting module sees."""
    return admin_api(gw)
