"""``GET /v1/key`` against a real server: a key sees its own object (balance, monthly budget and spend,
allowlist, limits), the admin API's fields under the same names, moving as it spends; never a secret or
a hash; 401 with no key, a wrong one or a revoked one, like every other route."""

from __future__ import annotations

from tests.admin_support import Api, admin, gw
from tests.conftest import ServerProc

__all__ = ["admin", "gw"]  # the shared fixtures this module uses


def test_a_key_sees_itself_as_the_admin_sees_it(gw: ServerProc, admin: Api) -> None:
    settings = {
        "credits": 2.5,
        "monthly_budget_usd": 10,
        "allowed_models": ["test/*"],
        "rate_limit_rpm": 100,
        "max_concurrent_tasks": 3,
    }
    key_id, secret = admin.new_key(name="alice", **settings)
    alice = Api(gw, secret)
    r = alice("GET", "/v1/key")
    assert r.status_code == 200, r.text
    own = r.json()
    assert own == admin.ok("GET", f"/admin/v1/keys/{key_id}")  # the same object, field for field
    assert (own["id"], own["object"], own["name"], own["status"], own["is_admin"]) == (
        key_id, "api_key", "alice", "active", False
    )  # fmt: skip
    assert (own["credits"], own["unlimited"], own["monthly_budget_usd"], own["month_spend_usd"]) == (2.5, False, 10, 0)
    assert (own["allowed_models"], own["rate_limit_rpm"], own["max_concurrent_tasks"]) == (["test/*"], 100, 3)
    assert secret.startswith(own["prefix"]) and own["expires_at"] is None and own["created_at"] > 0
    assert secret not in r.text and "secret" not in r.text and "hash" not in r.text


def test_spend_shows_after_a_priced_generation(gw: ServerProc, admin: Api) -> None:
    _, secret = admin.new_key(credits=1, monthly_budget_usd=5)
    bob = Api(gw, secret)
    assert bob.generate("test/priced").status_code == 200  # $0.01
    own = bob.ok("GET", "/v1/key")
    assert (own["credits"], own["month_spend_usd"], own["monthly_budget_usd"]) == (0.99, 0.01, 5)


def test_an_unlimited_admin_key_sees_itself(admin: Api) -> None:
    own = admin.ok("GET", "/v1/key")
    assert (own["name"], own["is_admin"], own["credits"], own["unlimited"]) == ("root", True, None, True)
    assert own["monthly_budget_usd"] is None and own["allowed_models"] is None and own["rate_limit_rpm"] is None


def test_each_key_sees_only_itself(gw: ServerProc, admin: Api) -> None:
    first, first_secret = admin.new_key(name="one", credits=1)
    second, second_secret = admin.new_key(name="two", credits=2)
    assert Api(gw, first_secret).ok("GET", "/v1/key")["id"] == first
    assert Api(gw, second_secret).ok("GET", "/v1/key")["id"] == second


def test_no_key_a_wrong_key_and_a_revoked_key_are_401(gw: ServerProc, admin: Api) -> None:
    key_id, secret = admin.new_key(credits=1)
    admin.ok("DELETE", f"/admin/v1/keys/{key_id}")
    for caller in (Api(gw, None), Api(gw, "ig-not-a-key"), Api(gw, secret)):
        r = caller("GET", "/v1/key")
        assert r.status_code == 401, r.text
        err = r.json()["error"]
        assert err["code"] == "invalid_api_key" and err["message"], r.text


def test_the_route_is_in_the_openapi_document_and_needs_a_key(gw: ServerProc) -> None:
    doc = Api(gw, None).ok("GET", "/openapi.json")
    op = doc["paths"]["/v1/key"]["get"]
    assert op["operationId"] == "get_own_key" and op["security"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/KeyObject")
