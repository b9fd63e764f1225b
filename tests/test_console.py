"""The console at /console, driven in headless Chromium (Playwright) against a real server: sign in,
generate and see the picture, a refusal shown naming its parameter, create and revoke a key, and a
normal key seeing only the playground and its tasks, the Tasks tab (a playground task listed, a stale
Cancel refused readably), and topping a key up. Every request the page makes goes to the gateway itself."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from playwright.sync_api import Route, expect

from tests.admin_support import Api
from tests.conftest import ServerProc
from tests.console_support import PHONE, admin, browser, gw, visits

__all__ = ["admin", "browser", "gw", "visits"]  # the fixtures this module uses


def test_page_and_assets_are_served_outside_the_openapi_document(gw: ServerProc) -> None:
    page = httpx.get(gw.url + "/console", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset, kind in (("console.js", "javascript"), ("console.css", "text/css")):
        r = httpx.get(f"{gw.url}/console/assets/{asset}", timeout=30)
        assert r.status_code == 200 and kind in r.headers["content-type"], (asset, r.headers)
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from another host
    paths = httpx.get(gw.url + "/openapi.json", timeout=30).json()["paths"]
    assert not [p for p in paths if p.startswith("/console")]


def test_admin_generates_and_sees_a_readable_refusal(gw: ServerProc, admin: Api, visits: Any) -> None:
    visit = visits()
    page = visit.sign_in(admin.key or "")
    expect(page.get_by_role("tab", name="Keys")).to_be_visible()
    sizes = page.locator("#size option").all_inner_texts()
    assert "64x64" in sizes and "2048x2048" in sizes and "custom…" in sizes, sizes
    page.get_by_label("Model", exact=True).select_option("test/priced")  # its rule stops at 2048 a side
    assert "2048x2048" in page.locator("#size option").all_inner_texts()
    page.get_by_label("Model", exact=True).select_option("test/test")
    page.get_by_label("Size", exact=True).select_option("64x64")
    page.get_by_label("Prompt", exact=True).fill("a lighthouse at dusk")
    page.get_by_role("button", name="Generate").click()
    img = page.locator("#results img").first
    expect(img).to_be_visible()
    page.wait_for_function("() => document.querySelector('#results img')?.complete")
    assert img.evaluate("i => i.naturalWidth") == 64 and img.evaluate("i => i.naturalHeight") == 64
    link = page.get_by_role("link", name="Download")
    assert "/v1/files/" in (link.get_attribute("href") or "") and link.get_attribute("download")
    expect(page.locator("#results .facts")).to_contain_text("cost $0")
    expect(page.locator("#results .facts")).to_contain_text("latency")
    visit.shot("playground")

    page.get_by_label("Size", exact=True).select_option("custom")
    page.get_by_label("Custom size (width x height)").fill("10x10")
    page.get_by_role("button", name="Generate").click()
    alert = page.locator("#generate-error")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("Error 400")
    expect(alert).to_contain_text("parameter: size")
    expect(alert).to_contain_text("is not supported by model 'test/test'")
    visit.shot("playground-error")


def test_admin_creates_and_revokes_a_key(gw: ServerProc, admin: Api, visits: Any) -> None:
    visit = visits()
    page = visit.sign_in(admin.key or "")
    page.get_by_role("tab", name="Keys").click()
    expect(page.get_by_role("table", name="API keys")).to_contain_text("root")
    page.get_by_label("Name", exact=True).fill("from-console")
    page.get_by_label("Credits (USD)").fill("2.5")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-secret-value")
    expect(secret).to_have_text(_starts_with("ig-"))
    value = secret.inner_text()
    assert Api(gw, value)("GET", "/v1/tasks").status_code == 200
    row = page.locator("tr", has_text="from-console")
    expect(row).to_contain_text("$2.5")
    expect(row).to_contain_text("active")
    visit.shot("keys-created")

    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Revoke from-console").click()
    expect(row).to_contain_text("revoked")
    expect(page.get_by_role("button", name="Revoke from-console")).to_have_count(0)
    assert Api(gw, value)("GET", "/v1/tasks").status_code == 401
    assert value not in page.locator("#keys-table").inner_text()
    visit.shot("keys-revoked")


def test_normal_key_sees_only_the_playground_at_phone_width(gw: ServerProc, admin: Api, visits: Any) -> None:
    _, secret = admin.new_key(name="plain")
    visit = visits(PHONE)
    page = visit.page
    page.goto(gw.url + "/console")
    page.get_by_label("API key").fill("ig-not-a-key")
    page.keyboard.press("Enter")
    expect(page.locator("#signin-error")).to_contain_text("That key is not valid.")
    visit.shot("signin-refused")
    visit.sign_in(secret)
    expect(page.get_by_role("tab", name="Keys")).to_be_hidden()
    expect(page.get_by_role("tab", name="Tasks")).to_be_visible()
    expect(page.locator("#panel-keys")).to_be_hidden()
    page.reload()  # the key stays for the tab's session
    expect(page.get_by_role("tab", name="Playground")).to_be_visible()
    expect(page.get_by_role("tab", name="Keys")).to_be_hidden()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width  # nothing wider than the phone
    visit.shot("playground-phone")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0


def test_tasks_tab_lists_a_playground_task_and_shows_a_refused_cancel(gw: ServerProc, admin: Api, visits: Any) -> None:
    _, secret = admin.new_key(name="tasks-owner")
    mine = Api(gw, secret)
    visit = visits(PHONE)
    page = visit.sign_in(secret)
    page.get_by_label("Size", exact=True).select_option("64x64")
    page.get_by_label("Prompt", exact=True).fill("a tasks tab")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#results img").first).to_be_visible()
    played = mine.ok("GET", "/v1/tasks?limit=1")["data"][0]["id"]

    page.get_by_role("tab", name="Tasks").click()
    table = page.get_by_role("table", name="Recent tasks")
    row = table.locator("tr", has_text=played)
    expect(row).to_contain_text("succeeded")
    expect(row).to_contain_text("test/test")
    expect(row).to_contain_text("$0")
    expect(row.get_by_role("button", name=f"Cancel task {played}")).to_have_count(0)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width  # the table scrolls inside its box
    visit.shot("tasks")

    # test/test finishes an async task at once, so the page is shown a stale
    # listing (the task still running, as it was a moment ago) and its Cancel meets the API's 409.
    created = mine.generate(**{"async": True})
    assert created.status_code == 202, created.text
    task_id = created.json()["id"]
    deadline = time.monotonic() + 30
    while mine.ok("GET", f"/v1/tasks/{task_id}")["status"] != "succeeded":
        assert time.monotonic() < deadline, "the async task did not finish"
        time.sleep(0.05)

    def stale(route: Route) -> None:
        answer = route.fetch()
        listing = answer.json()
        for task in listing["data"]:
            if task["id"] == task_id:
                task.update(status="running", progress=50, completed_at=None)
        route.fulfill(response=answer, body=json.dumps(listing))

    page.route("**/v1/tasks?limit=20", stale)
    page.get_by_role("button", name="Refresh").click()
    row = table.locator("tr", has_text=task_id)
    expect(row).to_contain_text("running")
    expect(row).to_contain_text("50%")
    row.get_by_role("button", name=f"Cancel task {task_id}").click()
    alert = page.locator("#tasks-error")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("Error 409")
    expect(alert).to_contain_text("already finished (succeeded); only queued or running tasks can be canceled")
    visit.shot("tasks-cancel-refused")
    page.unroute("**/v1/tasks?limit=20")
    page.get_by_role("button", name="Refresh").click()
    expect(alert).to_be_hidden()
    expect(row).to_contain_text("succeeded")
    expect(row.get_by_role("button", name=f"Cancel task {task_id}")).to_have_count(0)


def test_admin_tops_up_a_key_and_sees_the_refusal_for_an_unlimited_one(gw: ServerProc, admin: Api, visits: Any) -> None:
    topped, _ = admin.new_key(name="topped", credits=2.5)
    admin.new_key(name="open-ended")  # no credits: unlimited
    visit = visits()
    page = visit.sign_in(admin.key or "")
    page.get_by_role("tab", name="Keys").click()
    row = page.locator("tr", has_text="topped")
    expect(row).to_contain_text("$2.5")
    page.get_by_label("Top-up amount for topped (USD)").fill("1.5")
    page.get_by_role("button", name="Top up topped").click()
    expect(row.locator(".credits")).to_have_text("$4")
    assert admin.ok("GET", f"/admin/v1/keys/{topped}")["credits"] == 4.0
    expect(page.get_by_label("Top-up amount for topped (USD)")).to_have_value("")
    visit.shot("keys-topped-up")

    page.get_by_label("Top-up amount for open-ended (USD)").fill("1")
    page.get_by_role("button", name="Top up open-ended").click()
    alert = page.locator("#keys-error")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("Error 400")
    expect(alert).to_contain_text("this key has unlimited credits")
    expect(alert).to_contain_text("parameter: add_credits")
    expect(page.locator("tr", has_text="open-ended").locator(".credits")).to_have_text("unlimited")
    visit.shot("keys-topup-refused")


def _starts_with(prefix: str) -> object:
    import re

    return re.compile("^" + re.escape(prefix))
