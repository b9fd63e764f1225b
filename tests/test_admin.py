"""The admin API's keys, against a real server: who may call it, the key lifecycle (create, list, get,
update, revoke, rotate), and what a key's settings enforce on the request path (allowlist 403, monthly
budget 402, credits, expiry), seen through the OpenAI SDK."""

from __future__ import annotations

import openai
import pytest

from tests.admin_support import ROUTES, Api, admin, bad_request, gw
from tests.conftest import ServerProc

__all__ = ["admin", "gw"]  # the shared fixtures this module uses


def sdk(srv: ServerProc, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=secret, max_retries=0)


def draw(srv: ServerProc, secret: str, model: str = "test/test") -> None:
    sdk(srv, secret).images.generate(model=model, prompt="a lighthouse", size="64x64")  # type: ignore[arg-type]


def test_admin_routes_need_an_admin_key(gw: ServerProc, admin: Api) -> None:
    key_id, secret = admin.new_key()
    admin_id = admin.ok("GET", "/admin/v1/keys")["data"][0]["id"]
    task = Api(gw, secret).generate().json()
    for method, template in ROUTES:
        path = template.format(key=key_id, task=task.get("id", "img_x"))
        for caller, status, code in (
            (Api(gw, None), 401, "invalid_api_key"),
            (Api(gw, "ig-not-a-key"), 401, "invalid_api_key"),
            (Api(gw, secret), 403, "forbidden"),
        ):
            r = caller(method, path, json={})
            assert r.status_code == status, (method, path, r.text)
            err = r.json()["error"]
            assert err["code"] == code and err["message"] and "param" in err and err["type"], r.text
    assert admin.ok("GET", f"/admin/v1/keys/{admin_id}")["is_admin"] is True


def test_create_list_get_never_show_secrets(admin: Api) -> None:
    body = {"name": "ci", "credits": 2.5, "rate_limit_rpm": 100, "allowed_models": ["test/*"], "monthly_budget_usd": 10}
    made = admin.ok("POST", "/admin/v1/keys", 201, json=body)
    assert made["secret"].startswith("ig-") and made["secret"].startswith(made["prefix"])
    assert (made["credits"], made["unlimited"], made["status"], made["is_admin"]) == (2.5, False, "active", False)
    assert (made["allowed_models"], made["monthly_budget_usd"], made["month_spend_usd"]) == (["test/*"], 10.0, 0.0)
    listed = admin("GET", "/admin/v1/keys")
    assert made["secret"] not in listed.text and "secret" not in listed.text and "key_hash" not in listed.text
    assert made["id"] in {k["id"] for k in listed.json()["data"]}
    one = admin.ok("GET", f"/admin/v1/keys/{made['id']}")
    assert one == {k: v for k, v in made.items() if k != "secret"}
    r = admin("GET", "/admin/v1/keys/key_nope")
    assert r.status_code == 404 and r.json()["error"]["param"] == "key_id"


@pytest.mark.parametrize(
    "body,param",
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "a\u0000b"}, "name"),
        ({"name": "k", "credits": -1}, "credits"),
        ({"name": "k", "credits": "lots"}, "credits"),
        ({"name": "k", "rate_limit_rpm": 0}, "rate_limit_rpm"),
        ({"name": "k", "allowed_models": []}, "allowed_models"),
        ({"name": "k", "allowed_models": "openai/*"}, "allowed_models"),
        ({"name": "k", "expires_at": "next tuesday"}, "expires_at"),
        ({"name": "k", "monthly_budget_usd": 1e300}, "monthly_budget_usd"),
        ({"name": "k", "colour": "red"}, "colour"),
    ],
)
def test_bad_key_bodies_name_the_parameter(admin: Api, body: dict[str, object], param: str) -> None:
    bad_request(admin("POST", "/admin/v1/keys", json=body), param)


def test_credits_top_up_set_and_unlimited(gw: ServerProc, admin: Api) -> None:
    key_id, secret = admin.new_key(credits=0.01)
    draw(gw, secret, "test/priced")  # $0.01: the balance is spent
    with pytest.raises(openai.APIStatusError) as exc:
        draw(gw, secret, "test/priced")
    assert exc.value.status_code == 402
    path = f"/admin/v1/keys/{key_id}"
    assert admin.ok("PATCH", path, json={"add_credits": 0.02})["credits"] == 0.02
    draw(gw, secret, "test/priced")
    assert admin.ok("GET", path)["credits"] == 0.01
    assert admin.ok("PATCH", path, json={"credits": 5})["credits"] == 5.0
    assert admin.ok("PATCH", path, json={"unlimited": True})["unlimited"] is True
    bad_request(admin("PATCH", path, json={"add_credits": 1}), "add_credits")  # nothing to top up
    bad_request(admin("PATCH", path, json={"credits": 1, "add_credits": 1}), "add_credits")
    bad_request(admin("PATCH", path, json={"unlimited": True, "credits": 1}), "unlimited")
    bad_request(admin("PATCH", path, json={"add_credits": 0}), "add_credits")
    renamed = admin.ok("PATCH", path, json={"name": "renamed", "rate_limit_rpm": 7, "max_concurrent_tasks": 3})
    assert (renamed["name"], renamed["rate_limit_rpm"], renamed["max_concurrent_tasks"]) == ("renamed", 7, 3)
    lifted = admin.ok("PATCH", path, json={"rate_limit_rpm": None})
    assert lifted["rate_limit_rpm"] is None and lifted["max_concurrent_tasks"] == 3
    assert admin("PATCH", "/admin/v1/keys/key_nope", json={"name": "x"}).status_code == 404


def test_model_allowlist_is_a_403_naming_the_model(gw: ServerProc, admin: Api) -> None:
    key_id, secret = admin.new_key(allowed_models=["test/pr*"])
    draw(gw, secret, "test/priced")
    with pytest.raises(openai.PermissionDeniedError) as exc:
        draw(gw, secret, "test/test")
    err = exc.value.body
    assert isinstance(err, dict) and err["param"] == "model" and err["code"] == "model_not_allowed"
    assert "test/test" in err["message"]
    tasks = admin.ok("GET", f"/admin/v1/tasks?key_id={key_id}")["data"]
    assert [t["model"] for t in tasks] == ["test/priced"]  # the refused request made no task, held nothing
    admin.ok("PATCH", f"/admin/v1/keys/{key_id}", json={"allowed_models": ["test/*"]})
    draw(gw, secret, "test/test")
    admin.ok("PATCH", f"/admin/v1/keys/{key_id}", json={"allowed_models": None})
    draw(gw, secret, "test/test")


def test_monthly_budget_is_a_402(gw: ServerProc, admin: Api) -> None:
    key_id, secret = admin.new_key(monthly_budget_usd=0.025)  # unlimited credits: only the budget stops it
    draw(gw, secret, "test/priced")
    draw(gw, secret, "test/priced")
    with pytest.raises(openai.APIStatusError) as exc:
        draw(gw, secret, "test/priced")
    assert exc.value.status_code == 402
    err = exc.value.body
    assert isinstance(err, dict) and err["code"] == "budget_exceeded" and "monthly budget" in err["message"]
    key = admin.ok("GET", f"/admin/v1/keys/{key_id}")
    assert key["month_spend_usd"] == 0.02 and key["monthly_budget_usd"] == 0.025
    draw(gw, secret, "test/test")  # free: within any budget
    admin.ok("PATCH", f"/admin/v1/keys/{key_id}", json={"monthly_budget_usd": 1})
    draw(gw, secret, "test/priced")
    admin.ok("PATCH", f"/admin/v1/keys/{key_id}", json={"monthly_budget_usd": None})
    assert admin.ok("GET", f"/admin/v1/keys/{key_id}")["month_spend_usd"] == 0.03


def test_expiry_revoke_and_rotate(gw: ServerProc, admin: Api) -> None:
    key_id, secret = admin.new_key()
    user = Api(gw, secret)
    assert user.generate().status_code == 200
    before = admin.ok("GET", "/admin/v1/usage?group_by=key")["data"]
    expired = admin.ok("PATCH", f"/admin/v1/keys/{key_id}", json={"expires_at": "2020-01-01"})
    assert expired["status"] == "expired" and expired["expires_at"] == 1577836800
    r = user("GET", "/v1/tasks")
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    admin.ok("PATCH", f"/admin/v1/keys/{key_id}", json={"expires_at": None})
    tasks = user.ok("GET", "/v1/tasks")["data"]
    rotated = admin.ok("POST", f"/admin/v1/keys/{key_id}/rotate")
    assert rotated["id"] == key_id and rotated["secret"] != secret
    assert user("GET", "/v1/tasks").status_code == 401  # the old secret
    renewed = Api(gw, rotated["secret"])
    # same key, same history (compared without the signed links, whose expiry moves with the clock)
    assert [(t["id"], t["status"]) for t in renewed.ok("GET", "/v1/tasks")["data"]] == [
        (t["id"], t["status"]) for t in tasks
    ]
    assert tasks
    assert admin.ok("GET", "/admin/v1/usage?group_by=key")["data"] == before
    revoked = admin.ok("DELETE", f"/admin/v1/keys/{key_id}")
    assert revoked["status"] == "revoked" and revoked["revoked_at"]
    assert renewed("GET", "/v1/tasks").status_code == 401
    assert admin.ok("GET", "/admin/v1/usage?group_by=key")["data"] == before  # history kept
    r = admin("POST", f"/admin/v1/keys/{key_id}/rotate")
    assert r.status_code == 409 and r.json()["error"]["param"] == "key_id"


def test_a_normal_key_made_admin_may_call_the_admin_api(gw: ServerProc, admin: Api) -> None:
    key_id, secret = admin.new_key()
    assert Api(gw, secret)("GET", "/admin/v1/models").status_code == 403
    admin.ok("PATCH", f"/admin/v1/keys/{key_id}", json={"is_admin": True})
    assert Api(gw, secret)("GET", "/admin/v1/models").status_code == 200
    other_id, other = Api(gw, secret).new_key(is_admin=True)
    assert Api(gw, other).ok("GET", f"/admin/v1/keys/{other_id}")["is_admin"] is True
