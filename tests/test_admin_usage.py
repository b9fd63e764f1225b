"""The admin API's reads across keys, against a real server: usage (JSON and CSV), every key's tasks,
webhook redelivery, the catalog's state; and that normal keys still see only their own tasks."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from imagegate.api import admin_schemas, schemas
from tests.admin_support import Api, admin, bad_request, gw
from tests.async_support import Receiver, wait_until
from tests.conftest import ServerProc

__all__ = ["admin", "gw"]  # the shared fixtures this module uses
from tests.openapi_support import schemathesis
from tests.test_openapi import conforms

TODAY = datetime.now(UTC).date().isoformat()
TOMORROW = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()


@pytest.fixture(scope="module")
def traffic(gw: ServerProc, admin: Api) -> dict[str, Any]:
    """Two keys' tasks: A makes 3 priced images in two tasks and one free one; B one free image and a failure."""
    a_id, a = admin.new_key(name="alpha")
    b_id, b = admin.new_key(name="beta")
    ua, ub = Api(gw, a), Api(gw, b)
    made = [ua.generate("test/priced", n=2), ua.generate("test/priced"), ua.generate(), ub.generate()]
    assert all(r.status_code == 200 for r in made), [r.text for r in made]
    files = [{"field": "source_image", "filename": "in.png", "content_type": "image/png"}]
    body = {"model_group": "test/test", "task_type": "single_image_edit", "input": {"prompt": "x"},
            "files_to_upload": files}  # fmt: skip
    waiting = ub.ok("POST", "/api/omni/tasks/create", json=body)["portal_task_id"]  # never uploaded: it expires
    wait_until(lambda: ub.ok("GET", f"/v1/tasks/{waiting}")["status"] == "failed", 30, "the upload deadline")
    return {"a": (a_id, ua), "b": (b_id, ub), "failed": waiting}


def rows_of(report: dict[str, Any], *groups: str) -> dict[str, dict[str, Any]]:
    return {r["group"]: r for r in report["data"] if r["group"] in groups}


def test_usage_by_key_model_and_day(admin: Api, traffic: dict[str, Any]) -> None:
    (a_id, _), (b_id, _) = traffic["a"], traffic["b"]
    by_key = admin.ok("GET", "/admin/v1/usage?group_by=key")
    conforms(admin_schemas.UsageReport, by_key)
    rows = rows_of(by_key, a_id, b_id)
    assert rows[a_id] == {"group": a_id, "key_name": "alpha", "tasks": 3, "succeeded": 3, "errors": 0,
                          "images": 4, "spend_usd": 0.03}  # fmt: skip
    assert rows[b_id] == {"group": b_id, "key_name": "beta", "tasks": 2, "succeeded": 1, "errors": 1,
                          "images": 1, "spend_usd": 0.0}  # fmt: skip
    total = by_key["total"]
    assert total["tasks"] == sum(r["tasks"] for r in by_key["data"]) and total["spend_usd"] >= 0.03
    by_model = rows_of(admin.ok("GET", f"/admin/v1/usage?group_by=model&from={TODAY}"), "test/priced")
    assert by_model["test/priced"]["images"] >= 3 and by_model["test/priced"]["spend_usd"] >= 0.03
    by_day = admin.ok("GET", f"/admin/v1/usage?group_by=day&from={TODAY}&to={TOMORROW}")
    assert [r["group"] for r in by_day["data"]] == [TODAY] and by_day["data"][0]["tasks"] >= 5
    empty = admin.ok("GET", "/admin/v1/usage?from=2001-01-01&to=2001-02-01T00:00:00Z")
    assert empty["data"] == [] and empty["total"]["tasks"] == 0


def test_usage_as_csv(admin: Api, traffic: dict[str, Any]) -> None:
    report = admin.ok("GET", "/admin/v1/usage?group_by=key")
    r = admin("GET", "/admin/v1/usage?group_by=key&format=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["group"] for row in rows] == [row["group"] for row in report["data"]]
    a = next(row for row in rows if row["group"] == traffic["a"][0])
    assert (a["key_name"], a["tasks"], a["images"], float(a["spend_usd"])) == ("alpha", "3", "4", 0.03)


@pytest.mark.parametrize(
    "query,param",
    [
        ("group_by=week", "group_by"),
        ("format=xml", "format"),
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("from=2026-02-01&to=2026-01-01", "to"),
    ],
)
def test_usage_bad_parameters(admin: Api, query: str, param: str) -> None:
    bad_request(admin("GET", f"/admin/v1/usage?{query}"), param)


def test_tasks_across_keys(admin: Api, traffic: dict[str, Any]) -> None:
    (a_id, _), (b_id, _) = traffic["a"], traffic["b"]
    page = admin.ok("GET", f"/admin/v1/tasks?key_id={a_id}&limit=2")
    conforms(admin_schemas.AdminTaskList, page)
    assert page["has_more"] and len(page["data"]) == 2
    rest = admin.ok("GET", f"/admin/v1/tasks?key_id={a_id}&after={page['next_cursor']}")
    tasks = page["data"] + rest["data"]
    assert not rest["has_more"] and len(tasks) == 3 and {t["key_id"] for t in tasks} == {a_id}
    first = tasks[-1]  # the oldest: two priced images
    assert first["key_name"] == "alpha" and first["request"]["n"] == 2 and first["model"] == "test/priced"
    assert first["provider"] == "builtin" and first["deployment"] == "builtin-priced" and first["latency"] >= 0
    assert first["cost_usd"] == first["cost"] == 0.02 and len(first["data"]) == 2
    assert httpx.get(first["data"][0]["url"], timeout=30).status_code == 200
    priced = admin.ok("GET", f"/admin/v1/tasks?model=test/priced&from={TODAY}")["data"]
    assert {t["id"] for t in priced} >= {t["id"] for t in tasks if t["model"] == "test/priced"}
    failed = admin.ok("GET", f"/admin/v1/tasks?status=failed&key_id={b_id}")["data"]
    assert [t["id"] for t in failed] == [traffic["failed"]] and failed[0]["error"]["code"] == "upload_expired"
    assert admin.ok("GET", f"/admin/v1/tasks?key_id={a_id}&to=2001-01-01")["data"] == []


@pytest.mark.parametrize(
    "query,param",
    [("status=done", "status"), ("after=img_nope", "after"), ("limit=0", "limit"), ("from=soon", "from"),
     ("key_id=a%00b", "key_id")],
)  # fmt: skip
def test_tasks_bad_parameters(admin: Api, query: str, param: str) -> None:
    bad_request(admin("GET", f"/admin/v1/tasks?{query}"), param)


def test_normal_keys_see_only_their_own_tasks(admin: Api, traffic: dict[str, Any]) -> None:
    (_, ua), (_, ub) = traffic["a"], traffic["b"]
    mine = {t["id"] for t in ua.ok("GET", "/v1/tasks?limit=100")["data"]}
    theirs = {t["id"] for t in ub.ok("GET", "/v1/tasks?limit=100")["data"]}
    assert len(mine) == 3 and len(theirs) == 2 and not mine & theirs
    for task_id in theirs:
        for path in (f"/v1/tasks/{task_id}", f"/v1/images/generations/{task_id}", f"/v1/tasks/{task_id}/deliveries"):
            assert ua("GET", path).status_code == 404, path
        assert ua("POST", f"/v1/tasks/{task_id}/cancel").status_code == 404
    assert ua("GET", f"/v1/tasks?after={next(iter(theirs))}").status_code == 400  # no cursor into B's list
    everyone = {t["id"] for t in admin.ok("GET", "/admin/v1/tasks?limit=100")["data"]}
    assert mine | theirs <= everyone


def test_redeliver_a_webhook(gw: ServerProc, admin: Api) -> None:
    receiver = Receiver()
    try:
        _, secret = admin.new_key()
        user = Api(gw, secret)
        task = user.ok("POST", "/v1/images/generations?async=true", 202,
                       json={"model": "test/test", "prompt": "x", "callback_url": receiver.url + "/ok"})  # fmt: skip
        wait_until(lambda: receiver.for_task(task["id"]), 30, "the webhook")
        path = f"/admin/v1/tasks/{task['id']}/deliveries"
        delivered = wait_until(lambda: [d for d in admin.ok("GET", path)["data"] if d["status"] == "delivered"], 30)
        conforms(schemas.DeliveryList, admin.ok("GET", path))
        again = admin.ok("POST", f"{path}/{delivered[0]['id']}/redeliver")
        conforms(schemas.Delivery, again)
        assert again["id"] == delivered[0]["id"]
        wait_until(lambda: len(receiver.for_task(task["id"])) == 2, 30, "the second webhook")
        hits = receiver.for_task(task["id"])
        assert hits[0]["headers"]["webhook-id"] == hits[1]["headers"]["webhook-id"] == again["id"]
        done = wait_until(lambda: [d for d in admin.ok("GET", path)["data"] if d["attempt_count"] == 2], 30)
        assert done[0]["status"] == "delivered"
        r = admin("POST", f"{path}/msg_nope/redeliver")
        assert r.status_code == 404 and r.json()["error"]["param"] == "delivery_id"
        r = admin("POST", "/admin/v1/tasks/img_nope/deliveries/msg_nope/redeliver")
        assert r.status_code == 404 and r.json()["error"]["param"] == "task_id"
    finally:
        receiver.close()


def test_models_show_readiness_deployments_and_circuits(admin: Api) -> None:
    listed = admin.ok("GET", "/admin/v1/models")
    conforms(admin_schemas.AdminModelList, listed)
    models = {m["id"]: m for m in listed["data"]}
    test = models["test/test"]
    assert test["ready"] and test["missing_env"] == [] and test["not_ready_reason"] is None
    assert [(d["provider"], d["breaker"]) for d in test["deployments"]] == [("builtin", "closed")]
    gpt = models["gpt-image-1.5"]  # OPENAI_API_KEY is blanked for this server
    assert not gpt["ready"] and "OPENAI_API_KEY" in gpt["missing_env"] and "OPENAI_API_KEY" in gpt["not_ready_reason"]
    assert any("OPENAI_API_KEY" in d["missing_env"] and not d["ready"] for d in gpt["deployments"])


def test_answers_conform_to_their_schemas(admin: Api) -> None:
    made = admin.ok("POST", "/admin/v1/keys", 201, json={"name": "doc", "expires_at": "2099-01-01T00:00:00+02:00"})
    conforms(admin_schemas.KeyWithSecret, made)
    assert made["expires_at"] == int(datetime(2098, 12, 31, 22, tzinfo=UTC).timestamp())
    conforms(admin_schemas.KeyList, admin.ok("GET", "/admin/v1/keys"))
    conforms(admin_schemas.KeyObject, admin.ok("PATCH", f"/admin/v1/keys/{made['id']}", json={"name": "d"}))
    conforms(admin_schemas.KeyWithSecret, admin.ok("POST", f"/admin/v1/keys/{made['id']}/rotate"))
    conforms(admin_schemas.KeyObject, admin.ok("DELETE", f"/admin/v1/keys/{made['id']}"))


def test_schemathesis_finds_no_server_error_in_the_admin_api(gw: ServerProc, admin: Api, tmp_path: Path) -> None:
    """With an admin key (the suite-wide run has a normal key, so it sees the admin routes' 403s)."""
    report = tmp_path / "junit.xml"
    extra = ["--include-path-regex", "^/admin/"]
    done = schemathesis(gw.url, admin.key or "", report, max_examples=10, seed=20270201, extra=extra)
    tail = (done.stdout + done.stderr)[-8000:]
    assert done.returncode == 0, tail
    cases = ET.parse(report).getroot().findall(".//testcase")
    failed = [c.get("name") for c in cases if c.find("failure") is not None or c.find("error") is not None]
    assert len(cases) >= 10 and not failed, (len(cases), failed, tail)
