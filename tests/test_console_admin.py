"""The console's admin tabs in headless Chromium against a real server: a key's settings edited in a
dialog (one PATCH with what changed, the API's refusal shown there), a rotation showing the new secret,
a key past its monthly budget or outside its allowlist seeing why in the Playground, the Spend tab's
charts, totals and CSV export matching the usage API, the Catalog tab's readiness, deployments and
circuits, and no page wider than a phone on any tab. Also the usage API's key filter the Spend tab uses,
and the refusals' messages (402, 403, 429) as a person reads them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, Request, Route, expect

from tests.admin_support import Api, bad_request
from tests.conftest import ServerProc
from tests.console_support import PHONE, admin, browser, gw, visits

__all__ = ["admin", "browser", "gw", "visits"]  # the fixtures this module uses

TOMORROW = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()


def keys_tab(visit: Any, key: str) -> Page:
    page: Page = visit.sign_in(key)
    page.get_by_role("tab", name="Keys").click()
    expect(page.get_by_role("table", name="API keys")).to_contain_text("root")
    return page


def test_admin_edits_a_keys_settings_in_a_dialog(gw: ServerProc, admin: Api, visits: Any) -> None:
    key_id, _ = admin.new_key(name="editable", credits=5)
    visit = visits()
    page = keys_tab(visit, admin.key or "")
    patches: list[dict[str, Any]] = []

    def sent(request: Request) -> None:
        if request.method == "PATCH":
            patches.append(json.loads(request.post_data or "{}"))

    page.on("request", sent)
    edit = page.get_by_role("button", name="Edit editable")
    edit.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Settings of editable")).to_be_visible()
    expect(dialog.get_by_label("Key name")).to_be_focused()
    expect(dialog.get_by_label("Balance (USD)")).to_have_value("5")
    dialog.get_by_label("Model allowlist").fill("test/test\ntest/pri*, openai/*")
    dialog.get_by_label("Monthly budget (USD)").fill("2.5")
    dialog.get_by_label("Requests per minute").fill("30")
    dialog.get_by_label("Concurrent tasks").fill("2")
    dialog.get_by_label("Expires at (your local time)").fill("2030-01-02T03:04")
    visit.shot("keys-edit-dialog")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(edit).to_be_focused()  # back where the dialog was opened from
    expires = page.evaluate("() => new Date('2030-01-02T03:04').getTime() / 1000")
    key = admin.ok("GET", f"/admin/v1/keys/{key_id}")
    assert key["allowed_models"] == ["test/test", "test/pri*", "openai/*"]
    assert (key["monthly_budget_usd"], key["rate_limit_rpm"], key["max_concurrent_tasks"]) == (2.5, 30, 2)
    assert key["expires_at"] == expires and key["credits"] == 5.0 and key["name"] == "editable"
    assert patches == [{"expires_at": patches[0]["expires_at"], "allowed_models": key["allowed_models"],
                        "monthly_budget_usd": 2.5, "rate_limit_rpm": 30, "max_concurrent_tasks": 2}]  # fmt: skip
    row = page.locator("tr", has_text="editable")
    for text in ("budget $2.5/month", "30/min", "2 at once", "models: test/test, test/pri*, openai/*"):
        expect(row.locator(".limits")).to_contain_text(text)
    expect(row.locator(".expires")).not_to_have_text("never")

    # Escape closes the dialog unsaved; an emptied field lifts that limit; a wrong value is the API's 400
    edit.click()
    expect(dialog.get_by_label("Requests per minute")).to_have_value("30")
    dialog.get_by_label("Requests per minute").fill("999")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(edit).to_be_focused()
    assert admin.ok("GET", f"/admin/v1/keys/{key_id}")["rate_limit_rpm"] == 30
    edit.click()
    expect(dialog.get_by_label("Requests per minute")).to_have_value("30")  # filled afresh from the key
    dialog.get_by_label("Requests per minute").fill("0")
    dialog.get_by_label("Monthly budget (USD)").fill("")
    dialog.get_by_role("button", name="Save").click()
    alert = dialog.locator("#key-dialog-error")
    expect(alert).to_contain_text("Error 400")
    expect(alert).to_contain_text("parameter: rate_limit_rpm")
    expect(dialog).to_be_visible()
    visit.shot("keys-edit-refused")
    dialog.get_by_label("Requests per minute").fill("")
    dialog.get_by_label("Key name").fill("edited")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    assert patches[-1] == {"name": "edited", "monthly_budget_usd": None, "rate_limit_rpm": None}
    key = admin.ok("GET", f"/admin/v1/keys/{key_id}")
    assert (key["name"], key["monthly_budget_usd"], key["rate_limit_rpm"]) == ("edited", None, None)
    assert key["max_concurrent_tasks"] == 2 and key["expires_at"] == expires
    expect(page.get_by_role("button", name="Edit edited")).to_be_focused()


def test_dialog_moves_a_key_between_unlimited_and_a_balance(gw: ServerProc, admin: Api, visits: Any) -> None:
    key_id, _ = admin.new_key(name="open-tab")  # unlimited
    visit = visits()
    page = keys_tab(visit, admin.key or "")
    dialog = page.get_by_role("dialog")
    page.get_by_role("button", name="Edit open-tab").click()
    expect(dialog.get_by_label("Unlimited credits")).to_be_checked()
    expect(dialog.get_by_label("Balance (USD)")).to_be_disabled()
    dialog.get_by_label("Unlimited credits").uncheck()
    dialog.get_by_role("button", name="Save").click()
    alert = dialog.locator("#key-dialog-error")
    expect(alert).to_contain_text("Enter the balance (USD) the key starts from.")
    expect(alert).to_contain_text("parameter: credits")
    dialog.get_by_label("Balance (USD)").fill("3")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("tr", has_text="open-tab").locator(".credits")).to_have_text("$3")
    key = admin.ok("GET", f"/admin/v1/keys/{key_id}")
    assert (key["unlimited"], key["credits"]) == (False, 3.0)

    page.get_by_role("button", name="Edit open-tab").click()
    dialog.get_by_role("button", name="Save").click()  # nothing changed: nothing sent
    expect(dialog.locator("#key-dialog-status")).to_have_text("Nothing changed.")
    dialog.get_by_label("Unlimited credits").check()
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("tr", has_text="open-tab").locator(".credits")).to_have_text("unlimited")
    assert admin.ok("GET", f"/admin/v1/keys/{key_id}")["unlimited"] is True
    page.get_by_role("button", name="Edit open-tab").click()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Edit open-tab")).to_be_focused()


def test_admin_rotates_a_key_and_sees_its_new_secret_once(gw: ServerProc, admin: Api, visits: Any) -> None:
    key_id, old = admin.new_key(name="rotated")
    visit = visits()
    page = keys_tab(visit, admin.key or "")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Rotate rotated").click()
    notice = page.locator("#new-secret")
    expect(notice).to_contain_text("New secret for rotated")
    secret = page.locator("#new-secret-value")
    expect(secret).not_to_have_text("")
    new = secret.inner_text()
    assert new.startswith("ig-") and new != old
    assert Api(gw, new)("GET", "/v1/tasks").status_code == 200
    assert Api(gw, old)("GET", "/v1/tasks").status_code == 401
    assert admin.ok("GET", f"/admin/v1/keys/{key_id}")["status"] == "active"
    visit.shot("keys-rotated")


def test_budget_and_allowlist_refusals_read_clearly_in_the_playground(gw: ServerProc, admin: Api, visits: Any) -> None:
    visit = visits()
    page = keys_tab(visit, admin.key or "")
    page.get_by_label("Name", exact=True).fill("budgeted")
    page.get_by_text("Budget and model allowlist (optional)").click()
    page.get_by_label("Monthly budget for the new key (USD)").fill("0.01")
    page.get_by_label("Allowlist for the new key").fill("test/priced")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-secret-value")).to_have_text(_starts_with("ig-"))
    secret = page.locator("#new-secret-value").inner_text()
    expect(page.locator("tr", has_text="budgeted").locator(".limits")).to_contain_text(
        "budget $0.01/month · models: test/priced"
    )
    mine = Api(gw, secret)
    assert mine.generate("test/priced").status_code == 200  # the whole budget: one $0.01 image

    user = visits()
    played = user.sign_in(secret)
    played.get_by_label("Model", exact=True).select_option("test/priced")
    played.get_by_label("Size", exact=True).select_option("64x64")
    played.get_by_label("Prompt", exact=True).fill("one image too many")
    played.get_by_role("button", name="Generate").click()
    alert = played.locator("#generate-error")
    expect(alert).to_contain_text("Error 402")
    expect(alert).to_contain_text("this request would go over this key's monthly budget of $0.01")
    expect(alert).to_contain_text("an admin can raise it")
    user.shot("playground-budget")

    played.get_by_label("Model", exact=True).select_option("test/test")
    played.get_by_role("button", name="Generate").click()
    expect(alert).to_contain_text("Error 403")
    expect(alert).to_contain_text("this key may not use the model 'test/test'")
    expect(alert).to_contain_text("outside the key's model allowlist (test/priced)")
    expect(alert).to_contain_text("parameter: model")
    user.shot("playground-allowlist")


def test_rate_limit_refusal_says_when_to_retry(gw: ServerProc, admin: Api) -> None:
    _, secret = admin.new_key(name="slow-rate", rate_limit_rpm=1)
    mine = Api(gw, secret)
    assert mine.generate().status_code == 200
    refused = mine.generate()
    assert refused.status_code == 429, refused.text
    retry = int(refused.headers["retry-after"])
    message = refused.json()["error"]["message"]
    assert retry >= 1 and "limited to 1 requests per minute; retry in " in message, message
    assert int(message.rsplit("retry in ", 1)[1].split()[0]) >= 1, message


def test_usage_filtered_to_one_key(gw: ServerProc, admin: Api) -> None:
    key_id, secret = admin.new_key(name="filtered")
    mine = Api(gw, secret)
    assert mine.generate("test/priced", n=2).status_code == 200
    assert admin.generate().status_code == 200  # another key's task, left out below
    one = admin.ok("GET", f"/admin/v1/usage?group_by=model&key_id={key_id}&to={TOMORROW}")
    assert [(r["group"], r["images"], r["spend_usd"]) for r in one["data"]] == [("test/priced", 2, 0.02)]
    assert one["total"]["tasks"] == 1
    every = admin.ok("GET", f"/admin/v1/usage?group_by=model&to={TOMORROW}")
    assert every["total"]["tasks"] > 1
    by_key = admin.ok("GET", f"/admin/v1/usage?group_by=key&key_id={key_id}")
    assert [r["group"] for r in by_key["data"]] == [key_id]
    assert admin.ok("GET", "/admin/v1/usage?key_id=nobody")["data"] == []
    bad_request(admin("GET", "/admin/v1/usage?key_id=a%00b"), "key_id")


def _totals(page: Page) -> dict[str, str]:
    return {name: page.locator(f".total-{name}").inner_text() for name in ("spend", "images", "tasks", "errors")}


def _dollars(value: float) -> str:
    return f"${value:.4f}" if value and value < 0.01 else f"${value:.2f}"


def test_spend_tab_charts_totals_and_csv_match_the_usage_api(
    gw: ServerProc, admin: Api, visits: Any, tmp_path: Path
) -> None:
    key_id, secret = admin.new_key(name="spender")
    mine = Api(gw, secret)
    for n in (2, 1):
        assert mine.generate("test/priced", n=n).status_code == 200
    assert mine.generate().status_code == 200  # a free one
    visit = visits()
    page = visit.sign_in(admin.key or "")
    page.get_by_role("tab", name="Spend").click()
    day_chart = page.locator("#spend-day svg[role=img]")
    expect(day_chart).to_be_visible()
    start, end = page.get_by_label("From", exact=True).input_value(), page.get_by_label("To (inclusive)").input_value()
    assert end == datetime.now(UTC).date().isoformat()
    assert start == (datetime.now(UTC) - timedelta(days=29)).date().isoformat()
    period = f"from={start}&to={TOMORROW}"
    every = admin.ok("GET", f"/admin/v1/usage?group_by=day&{period}")["total"]
    expect(page.locator(".total-tasks")).to_have_text(str(every["tasks"]))
    assert _totals(page) == {"spend": _dollars(every["spend_usd"]), "images": str(every["images"]),
                             "tasks": str(every["tasks"]), "errors": str(every["errors"])}  # fmt: skip
    assert page.locator("#spend-day svg rect").count() > 0
    assert page.locator("#spend-model svg rect").count() > 0
    assert f"total {_dollars(every['spend_usd'])}" in (day_chart.get_attribute("aria-label") or "")
    expect(page.locator("#spend-model svg[role=img]")).to_have_attribute("aria-label", _contains("test/priced $"))
    visit.shot("spend")

    page.get_by_label("Key", exact=True).select_option(key_id)
    page.get_by_role("button", name="Show", exact=True).click()
    expect(page.locator(".total-spend")).to_have_text("$0.03")
    assert _totals(page) == {"spend": "$0.03", "images": "4", "tasks": "3", "errors": "0"}
    by_model = admin.ok("GET", f"/admin/v1/usage?group_by=model&key_id={key_id}&{period}")
    assert {r["group"]: r["spend_usd"] for r in by_model["data"]} == {"test/priced": 0.03, "test/test": 0.0}
    page.get_by_text("Show the numbers (per model)").click()
    numbers = page.get_by_role("table", name="Per model")
    expect(numbers.locator("tr", has_text="test/priced")).to_contain_text("$0.03")
    expect(numbers.locator("tr", has_text="test/priced")).to_contain_text("3")
    assert page.locator("#spend-model svg rect").count() == 1  # the free model has no bar
    visit.shot("spend-one-key")

    page.get_by_label("CSV rows").select_option("model")
    with page.expect_download() as caught:
        page.get_by_role("button", name="Download CSV").click()
    download = caught.value
    assert download.suggested_filename == "imagegate-usage-by-model.csv"
    saved = tmp_path / "usage.csv"
    download.save_as(saved)
    expected = admin("GET", f"/admin/v1/usage?group_by=model&key_id={key_id}&{period}&format=csv")
    assert expected.status_code == 200 and saved.read_text() == expected.text
    assert "test/priced" in expected.text

    page.get_by_label("From", exact=True).fill("2001-01-01")
    page.get_by_label("To (inclusive)").fill("2001-01-31")
    page.get_by_role("button", name="Show", exact=True).click()
    expect(page.locator("#spend-empty")).to_be_visible()
    expect(page.locator(".total-tasks")).to_have_text("0")
    expect(page.locator("#spend-charts")).to_be_hidden()


def test_catalog_tab_shows_readiness_deployments_and_breakers(gw: ServerProc, admin: Api, visits: Any) -> None:
    state = {m["id"]: m for m in admin.ok("GET", "/admin/v1/models")["data"]}
    visit = visits()
    page = visit.sign_in(admin.key or "")
    page.get_by_role("tab", name="Catalog").click()
    table = page.get_by_role("table", name="Catalog models")
    row = table.locator("tr[data-model='test/test']")
    expect(row).to_contain_text("ready")
    expect(row).not_to_contain_text("not ready")
    deployment = state["test/test"]["deployments"][0]
    expect(row).to_contain_text(f"{deployment['id']} {deployment['provider']}")
    expect(row.locator(".breaker")).to_have_text("closed")
    priced = table.locator("tr[data-model='test/priced']")
    expect(priced).to_contain_text("$0.01 per image")
    expect(priced).to_contain_text("generate, edit")
    expect(priced).to_contain_text("builtin-priced builtin")
    for model in [m for m in state.values() if not m["ready"]][:3]:
        missing = table.locator(f"tr[data-model='{model['id']}']")
        expect(missing).to_contain_text("not ready")
        for env in model["missing_env"]:
            expect(missing).to_contain_text(env)
        expect(missing.locator(".price")).to_contain_text("$")  # priced though it cannot serve yet
    assert table.locator("tbody tr").count() == len(state)
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#models-status")).to_contain_text(f"{len(state)} model(s)")
    visit.shot("catalog")

    # circuits this test cannot trip for real (the built-in model does not fail): the page is shown some
    def tripped(route: Route) -> None:
        answer = route.fetch()
        listing = answer.json()
        for model in listing["data"]:
            if model["id"] == "test/priced":
                model["deployments"][0].update(breaker="open", consecutive_failures=5)
            if model["id"] == "test/slow":
                model["deployments"][0].update(breaker="half_open", consecutive_failures=1)
        route.fulfill(response=answer, body=json.dumps(listing))

    page.route("**/admin/v1/models", tripped)
    page.get_by_role("button", name="Refresh").click()
    expect(priced.locator(".breaker")).to_have_text("open")
    expect(priced).to_contain_text("5 failure(s) in a row")
    expect(table.locator("tr[data-model='test/slow'] .breaker")).to_have_text("half-open")
    expect(row.locator(".breaker")).to_have_text("closed")
    page.unroute("**/admin/v1/models")


def test_every_tab_fits_a_phone(gw: ServerProc, admin: Api, visits: Any) -> None:
    visit = visits(PHONE)
    page = visit.sign_in(admin.key or "")
    for tab in ("Playground", "Gallery", "Tasks", "Keys", "Spend", "Catalog"):
        page.get_by_role("tab", name=tab).click()
        expect(page.get_by_role("tabpanel")).to_be_visible()
        if tab == "Spend":
            expect(page.locator("#spend-totals .total").first).to_be_visible()
        if tab == "Catalog":
            expect(page.locator("#models-table tbody tr").first).to_be_visible()
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (tab, width)
        visit.shot(f"phone-{tab.lower()}")
    page.get_by_role("tab", name="Keys").click()
    page.get_by_role("button", name="Edit root").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], ("dialog", width)
    visit.shot("phone-keys-dialog")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()


def _starts_with(prefix: str) -> object:
    import re

    return re.compile("^" + re.escape(prefix))


def _contains(text: str) -> object:
    import re

    return re.compile(re.escape(text))
