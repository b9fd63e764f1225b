"""The console's Gallery tab, in headless Chromium against a real server: a normal key sees its own
outputs as thumbnails made by the gateway (no larger than asked, fetched with the key and shown through
blob URLs that are revoked when the grid is redrawn), filters them by model, opens one to see the full
image, its prompt and parameters, and closes it with Escape; an admin sees every key's and filters by
key; "Load more" pages; an empty gallery and a failing listing say so; nothing overflows at phone width."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.admin_support import Api, admin_api
from tests.conftest import ServerProc
from tests.console_support import PHONE, Visit, admin, browser, gw, start_console_server, visits

__all__ = ["admin", "browser", "gw", "visits"]  # the fixtures this module uses

#: whether an image URL fails to load (a revoked blob URL does; fetch() may not read blob: URLs under the CSP)
LOADS_NOT = (
    "src => new Promise(done => { const i = new Image(); i.onload = () => done(false);"
    " i.onerror = () => done(true); i.src = src; })"
)
ALICE = [  # (model, prompt, size): what the normal key generates, oldest first
    ("test/test", "a lighthouse at dusk, waves breaking on the rocks", "128x96"),
    ("test/priced", "a red kite over the dunes", "96x128"),
    ("test/test", "a harbour at night with paper lanterns", "160x96"),
]
ROOT = [  # the admin key's own
    ("test/priced", "a field of sunflowers under a storm", "128x128"),
    ("test/test", "snowy mountains at sunrise", "128x96"),
    ("test/priced", "a koi pond seen from above", "96x96"),
]


@pytest.fixture(scope="module")
def alice(gw: ServerProc, admin: Api) -> Api:
    api = Api(gw, admin.new_key(name="alice")[1])
    for model, prompt, size in ALICE:
        assert api.generate(model, prompt=prompt, size=size).status_code == 200
    for model, prompt, size in ROOT:
        assert admin.generate(model, prompt=prompt, size=size).status_code == 200
    return api


def open_gallery(page: Page, tiles: int) -> None:
    page.get_by_role("tab", name="Gallery").click()
    expect(page.locator("#gallery-grid .tile")).to_have_count(tiles)
    wait_loaded(page)


def wait_loaded(page: Page) -> None:
    page.wait_for_function(
        "() => [...document.querySelectorAll('#gallery-grid .tile img')].every("
        "i => i.dataset.state === 'loaded' && i.complete && i.naturalWidth > 0)"
    )


def thumbs(page: Page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.eval_on_selector_all(
        "#gallery-grid .tile img",
        "imgs => imgs.map(i => ({alt: i.alt, src: i.src, w: i.naturalWidth, h: i.naturalHeight}))",
    )
    return found


def no_horizontal_overflow(page: Page) -> None:
    wide = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert wide <= 0, wide


def test_a_key_sees_its_own_outputs_filters_by_model_and_opens_one(alice: Api, visits: Any) -> None:
    visit = visits()
    page = visit.sign_in(alice.key or "")
    open_gallery(page, 3)
    shown = thumbs(page)
    assert [t["alt"] for t in shown] == [p for _, p, _ in reversed(ALICE)]  # newest first, only its own
    for t, (_, _, size) in zip(shown, reversed(ALICE), strict=True):
        w, h = (int(v) for v in size.split("x"))
        assert 0 < t["w"] <= 256 and 0 < t["h"] <= 256 and t["src"].startswith("blob:")
        assert abs(t["w"] / t["h"] - w / h) < 0.05, (t, size)  # the aspect kept
    expect(page.locator("#gallery-status")).to_have_text("3 image(s).")
    visit.shot("gallery-own")

    old = shown[0]["src"]
    page.get_by_label("Generated with").select_option("test/priced")
    expect(page.locator("#gallery-grid .tile")).to_have_count(1)
    wait_loaded(page)
    assert [t["alt"] for t in thumbs(page)] == ["a red kite over the dunes"]
    revoked = page.evaluate(LOADS_NOT, old)
    assert revoked, "the old grid's blob URL is still alive"
    assert not page.evaluate(LOADS_NOT, thumbs(page)[0]["src"])  # the check tells a live one apart

    tile = page.get_by_role("button", name="a red kite over the dunes")
    tile.click()
    dialog = page.get_by_role("dialog", name="Image details")
    expect(dialog).to_be_visible()
    full = page.locator("#gallery-full")
    page.wait_for_function("() => document.querySelector('#gallery-full').complete")
    assert full.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [96, 128]  # the full image, not the preview
    link = dialog.get_by_role("link", name="Download")
    assert "/v1/files/" in (link.get_attribute("href") or "") and link.get_attribute("download")
    expect(page.locator("#gallery-prompt")).to_have_text("a red kite over the dunes")
    facts = page.locator("#gallery-facts")
    for text in ("test/priced", "96x128", "$0.01", "png", "Latency", "Created"):
        expect(facts).to_contain_text(text)
    expect(facts).not_to_contain_text("Key")  # a normal key's own images: no key column
    visit.shot("gallery-detail")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(tile).to_be_focused()  # focus returns to the tile that opened it

    page.keyboard.press("Enter")  # the tile is a button: the keyboard opens it too
    expect(dialog).to_be_visible()
    page.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()


def test_an_admin_sees_every_keys_outputs_and_filters_by_key(admin: Api, alice: Api, visits: Any) -> None:
    visit = visits()
    page = visit.sign_in(admin.key or "")
    open_gallery(page, len(ALICE) + len(ROOT))
    prompts = {t["alt"] for t in thumbs(page)}
    assert prompts == {p for _, p, _ in ALICE + ROOT}
    visit.shot("gallery", doc=True)  # the README's screenshot (1200x900)

    key_options = page.locator("#gallery-key option").all_inner_texts()
    assert any(o.startswith("alice (") for o in key_options) and any(o.startswith("root (") for o in key_options)
    alice_id = page.locator("#gallery-key option", has_text="alice (").get_attribute("value") or ""
    page.get_by_label("Generated by").select_option(alice_id)
    expect(page.locator("#gallery-grid .tile")).to_have_count(len(ALICE))
    page.get_by_label("Generated with").select_option("test/test")
    expect(page.locator("#gallery-grid .tile")).to_have_count(2)
    wait_loaded(page)
    assert {t["alt"] for t in thumbs(page)} == {p for m, p, _ in ALICE if m == "test/test"}

    page.locator("#gallery-grid .tile").first.click()
    facts = page.locator("#gallery-facts")
    expect(facts).to_contain_text("alice")  # whose image it is
    expect(facts).to_contain_text("160x96")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()

    page.get_by_label("Generated by").select_option("")
    page.get_by_label("Generated with").select_option("test/slow")
    expect(page.locator("#gallery-status")).to_have_text("No images match these filters.")
    expect(page.locator("#gallery-grid .tile")).to_have_count(0)


def test_load_more_pages_and_an_empty_gallery_says_so(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    srv = start_console_server(tmp_path_factory)  # its own server: these 25 images stay out of the others' grids
    visit = Visit(browser, srv, tmp_path)
    try:
        busy = Api(srv, admin_api(srv).new_key(name="busy")[1])
        page = visit.sign_in(busy.key or "")
        page.get_by_role("tab", name="Gallery").click()
        expect(page.locator("#gallery-status")).to_have_text("No images yet: generate some in the Playground.")
        expect(page.get_by_role("button", name="Load more")).to_be_hidden()
        for i in range(25):  # one more than a page
            assert busy.generate(prompt=f"tile {i}", size="32x32").status_code == 200
        page.get_by_role("button", name="Refresh").click()
        expect(page.locator("#gallery-grid .tile")).to_have_count(24)
        more = page.get_by_role("button", name="Load more")
        expect(more).to_be_visible()
        more.click()
        expect(page.locator("#gallery-grid .tile")).to_have_count(25)
        expect(more).to_be_hidden()
        wait_loaded(page)
        assert thumbs(page)[-1]["alt"] == "tile 0" and thumbs(page)[-1]["w"] == 32  # never enlarged
    except BaseException:
        visit.shot("failure-load-more")
        visit.context.close()
        srv.stop()
        raise
    try:
        visit.close()  # no request off this machine, no script error
    finally:
        srv.stop()


def test_a_failing_listing_is_shown_in_an_alert(alice: Api, visits: Any) -> None:
    visit = visits()
    page = visit.sign_in(alice.key or "")

    def refuse(route: Route) -> None:
        body = {"error": {"message": "the database is unavailable", "type": "server_error", "code": "unavailable"}}
        route.fulfill(status=503, content_type="application/json", body=json.dumps(body))

    page.route("**/v1/tasks?status=succeeded*", refuse)
    page.get_by_role("tab", name="Gallery").click()
    alert = page.locator("#gallery-error")
    expect(alert).to_be_visible()
    expect(alert).to_have_attribute("role", "alert")
    expect(alert).to_contain_text("Error 503")
    expect(alert).to_contain_text("the database is unavailable")
    page.unroute("**/v1/tasks?status=succeeded*")
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#gallery-grid .tile")).to_have_count(3)
    expect(alert).to_be_hidden()


def test_an_image_no_longer_stored_shows_as_not_available(alice: Api, visits: Any) -> None:
    newest = alice.ok("GET", "/v1/tasks?status=succeeded&limit=1")["data"][0]["id"]
    visit = visits()
    page = visit.sign_in(alice.key or "")

    def gone(route: Route) -> None:  # what the gateway answers once retention removed the output
        body = {"error": {"message": "image 0 is no longer stored", "type": "invalid_request_error", "param": "index"}}
        route.fulfill(status=404, content_type="application/json", body=json.dumps(body))

    page.route(f"**/v1/tasks/{newest}/images/0/thumbnail*", gone)
    page.get_by_role("tab", name="Gallery").click()
    expect(page.locator("#gallery-grid .tile-cell.missing")).to_have_count(1)
    missing = page.locator("#gallery-grid .tile-cell.missing img")
    expect(missing).to_have_attribute("title", "This image is no longer stored.")
    assert missing.get_attribute("alt") == ALICE[-1][1]
    expect(page.locator("#gallery-grid .tile img[data-state=loaded]")).to_have_count(2)  # the others load
    expect(page.locator("#gallery-error")).to_be_hidden()  # one missing picture is no error of the page


def test_usable_at_phone_width(alice: Api, visits: Any) -> None:
    visit = visits(viewport=PHONE)
    page = visit.sign_in(alice.key or "")
    open_gallery(page, 3)
    no_horizontal_overflow(page)
    visit.shot("gallery-phone")
    page.get_by_role("button", name=ALICE[2][1]).click()
    expect(page.get_by_role("dialog", name="Image details")).to_be_visible()
    page.wait_for_function("() => document.querySelector('#gallery-full').complete")
    box = page.locator("#gallery-detail").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    no_horizontal_overflow(page)
    visit.shot("gallery-phone-detail")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
