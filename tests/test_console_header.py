"""The console's header, in headless Chromium against a real server: after sign-in it names the key and
its balance (from ``GET /v1/key``), with the monthly budget where the key has one, "unlimited" for an
unlimited key; "Update" reads it again; a key revoked meanwhile is signed out; and at phone width the
header fits the screen."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.admin_support import Api
from tests.conftest import ServerProc
from tests.console_support import PHONE, admin, browser, gw, visits

__all__ = ["admin", "browser", "gw", "visits"]  # the fixtures this module uses


def test_header_shows_the_balance_and_budget_and_updates_it(gw: ServerProc, admin: Api, visits: Any) -> None:
    _, secret = admin.new_key(name="alice", credits=2.5, monthly_budget_usd=10)
    page = visits().sign_in(secret)
    summary = page.locator("#key-summary")
    expect(summary).to_have_text("alice · $2.50 left · $0 of $10 this month")
    assert page.locator("#key-info").get_attribute("aria-live") == "off"  # no announcement on every update
    assert Api(gw, secret).generate("test/priced").status_code == 200  # $0.01, outside the page
    page.get_by_role("button", name="Update balance", exact=True).click()
    expect(summary).to_have_text("alice · $2.49 left · $0.01 of $10 this month")


def test_header_shows_unlimited_for_the_admin_key(admin: Api, visits: Any) -> None:
    page = visits().sign_in(admin.key or "")
    expect(page.get_by_role("tab", name="Keys")).to_be_visible()  # is_admin from the same answer
    expect(page.locator("#key-summary")).to_have_text("root · unlimited")


def test_a_key_revoked_meanwhile_is_signed_out_on_update(gw: ServerProc, admin: Api, visits: Any) -> None:
    key_id, secret = admin.new_key(name="brief", credits=1)
    page = visits().sign_in(secret)
    expect(page.locator("#key-summary")).to_have_text("brief · $1 left")
    admin.ok("DELETE", f"/admin/v1/keys/{key_id}")
    page.get_by_role("button", name="Update balance", exact=True).click()
    expect(page.get_by_label("API key")).to_be_visible()
    expect(page.locator("#key-info")).to_be_hidden()


def test_header_fits_a_phone(gw: ServerProc, admin: Api, visits: Any) -> None:
    _, secret = admin.new_key(name="a-rather-long-key-name-for-a-phone", credits=123.45, monthly_budget_usd=1000)
    cases = ((secret, "$123.45 left · $0 of $1000 this month"), (admin.key or "", "root · unlimited"))
    for i, (key, text) in enumerate(cases):
        visit = visits(PHONE)
        page = visit.sign_in(key)
        expect(page.locator("#key-summary")).to_contain_text(text)
        expect(page.get_by_role("button", name="Update balance", exact=True)).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (key == secret, width)  # nothing wider than the phone
        visit.shot(f"header-phone-{i}")
