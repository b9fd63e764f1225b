"""The console's Tasks tab in headless Chromium against a real server: the live list following a slow task
to success without Refresh (and asking nothing once the tab is hidden), Cancel of a running task, a queued
task's place in the queue, the detail dialog (timeline, request, outputs, webhook deliveries with their
attempts; Redeliver for admins), an admin's filters by key, model, status and date, a key seeing only its
own tasks, and the tab at phone width."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from typing import Any

from playwright.sync_api import Page, Request, Route, expect

from tests.admin_support import Api
from tests.async_support import Receiver, wait_until
from tests.conftest import ServerProc
from tests.console_support import PHONE, admin, browser, gw, visits

__all__ = ["admin", "browser", "gw", "visits"]  # the fixtures this module uses

SLOW = 40_000  # ms: a test/slow image takes 4 s, and the list refreshes every 2 s


def create(api: Api, model: str = "test/slow", **body: Any) -> str:
    """An async task through the API (not the console); its id."""
    r = api("POST", "/v1/images/generations", json={"model": model, "prompt": "a tasks tab", "async": True, **body})
    assert r.status_code in (200, 202), r.text
    return r.json()["id"]


def open_tasks(page: Page) -> Any:
    page.get_by_role("tab", name="Tasks").click()
    return page.get_by_role("table", name="Recent tasks")


def no_overflow(page: Page) -> None:
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width  # tables scroll inside their box, the dialog fits


def test_live_list_follows_a_slow_task_and_stops_asking_when_hidden(gw: ServerProc, admin: Api, visits: Any) -> None:
    _, secret = admin.new_key(name="live-owner")
    mine = Api(gw, secret)
    visit = visits()
    page = visit.sign_in(secret)
    listings: list[str] = []
    out = {"now": 0, "most": 0}  # list requests in flight: never more than one

    def seen(request: Request) -> None:
        if "/v1/tasks?" in request.url:
            listings.append(request.url)
            out["now"] += 1
            out["most"] = max(out["most"], out["now"])

    def back(request: Request) -> None:
        if "/v1/tasks?" in request.url:
            out["now"] -= 1

    page.on("request", seen)
    page.on("requestfinished", back)
    page.on("requestfailed", back)
    table = open_tasks(page)
    expect(page.locator("#tasks-status")).to_have_text("No tasks yet.")
    expect(page.get_by_label("Filter by key")).to_be_hidden()  # an admin's filters only

    task_id = create(mine, n=2)  # made elsewhere (8 s of work): the open tab picks it up without Refresh
    row = table.locator("tr", has_text=task_id)
    expect(row).to_be_visible(timeout=SLOW)
    expect(row).to_contain_text("test/slow")
    bar = page.get_by_role("progressbar", name=f"Progress of task {task_id}")
    expect(bar).to_be_visible(timeout=SLOW)
    expect(row).to_contain_text("running", timeout=SLOW)
    for _ in range(3):  # impatient clicks queue one more refresh, they do not stack requests
        page.get_by_role("button", name="Refresh").click()
    expect(bar).to_have_attribute("value", re.compile(r"^[1-9][0-9]*$"), timeout=SLOW)  # moved past 0
    expect(row.locator(".pct")).to_have_text(re.compile(r"^[1-9][0-9]*%$"))
    visit.shot("tasks-live-running")
    expect(row).to_contain_text("succeeded", timeout=SLOW)
    expect(bar).to_have_count(0)
    expect(row.get_by_role("button", name=f"Cancel task {task_id}")).to_have_count(0)
    expect(row).to_contain_text("$0.02")
    expect(page.locator("#tasks-status")).to_contain_text("1 task(s), 0 queued or running.")
    assert mine.ok("GET", f"/v1/tasks/{task_id}")["status"] == "succeeded"
    assert all("limit=20" in u and "/admin/" not in u for u in listings), listings
    assert out["most"] == 1, out
    visit.shot("tasks-live-done")

    page.get_by_role("tab", name="Playground").click()
    page.wait_for_timeout(300)  # a request already out may still land
    asked = len(listings)
    page.wait_for_timeout(4500)  # two refresh periods
    assert len(listings) == asked, listings[asked:]  # hidden: no more polling
    open_tasks(page)
    expect(row).to_contain_text("succeeded")
    wait_until(lambda: len(listings) > asked, 10, "a refresh once shown again")


def test_cancel_a_running_slow_task_at_phone_width(gw: ServerProc, admin: Api, visits: Any) -> None:
    _, secret = admin.new_key(name="cancel-owner")
    mine = Api(gw, secret)
    visit = visits(PHONE)
    page = visit.sign_in(secret)
    table = open_tasks(page)
    task_id = create(mine, n=4)  # four 4 s images: running for a while
    row = table.locator("tr", has_text=task_id)
    expect(row).to_contain_text("running", timeout=SLOW)
    no_overflow(page)
    visit.shot("tasks-phone")
    row.get_by_role("button", name=f"Cancel task {task_id}").click()
    expect(row).to_contain_text("canceled")
    expect(row.get_by_role("button", name=f"Cancel task {task_id}")).to_have_count(0)
    expect(page.locator("#tasks-error")).to_be_hidden()
    assert mine.ok("GET", f"/v1/tasks/{task_id}")["status"] == "canceled"
    page.wait_for_event("requestfinished", lambda q: "/v1/tasks?" in q.url, timeout=SLOW)  # the next refresh agrees
    expect(row).to_contain_text("canceled")

    row.get_by_role("button", name=f"Details of task {task_id}").click()
    dialog = page.get_by_role("dialog", name=f"Task {task_id}")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#task-timeline")).to_contain_text("Canceled")
    expect(dialog.locator("#task-outputs")).to_contain_text("the task did not succeed")
    no_overflow(page)
    visit.shot("tasks-phone-detail")
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()


def test_an_admin_cancels_another_keys_running_task(gw: ServerProc, admin: Api, visits: Any) -> None:
    key_id, secret = admin.new_key(name="someone-else", credits=1.0)
    theirs = Api(gw, secret)
    task_id = create(theirs, n=4)  # $0.04 reserved while it runs
    visit = visits()
    page = visit.sign_in(admin.key or "")
    row = open_tasks(page).locator("tr", has_text=task_id)
    expect(row).to_contain_text("someone-else")
    expect(row).to_contain_text("running", timeout=SLOW)
    row.get_by_role("button", name=f"Cancel task {task_id}").click()
    expect(row).to_contain_text("canceled")
    expect(page.locator("#tasks-error")).to_be_hidden()
    assert theirs.ok("GET", f"/v1/tasks/{task_id}")["status"] == "canceled"
    assert admin.ok("GET", f"/admin/v1/keys/{key_id}")["credits"] == 1.0  # the reservation is refunded

    again = admin("POST", f"/admin/v1/tasks/{task_id}/cancel")
    assert again.status_code == 409 and again.json()["error"]["param"] == "task_id", again.text
    missing = admin("POST", "/admin/v1/tasks/img_nope/cancel")
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "task_id", missing.text
    refused = theirs("POST", f"/admin/v1/tasks/{task_id}/cancel")
    assert refused.status_code == 403, refused.text


def test_a_queued_task_shows_its_place_in_the_queue(gw: ServerProc, admin: Api, visits: Any) -> None:
    # the server runs 16 tasks at once, more than a test can keep busy reliably: the page is shown a
    # listing from a moment when the task was still waiting, second in line
    _, secret = admin.new_key(name="queue-owner")
    mine = Api(gw, secret)
    task_id = create(mine, model="test/test")
    wait_until(lambda: mine.ok("GET", f"/v1/tasks/{task_id}")["status"] == "succeeded", 30, "the task")
    visit = visits()
    page = visit.sign_in(secret)

    def queued(route: Route) -> None:
        answer = route.fetch()
        listing = answer.json()
        for task in listing["data"]:
            if task["id"] == task_id:
                task.update(status="queued", queue_position=2, started_at=None, completed_at=None, data=None)
                task.pop("progress", None)
        route.fulfill(response=answer, body=json.dumps(listing))

    page.route("**/v1/tasks?limit=20", queued)
    row = open_tasks(page).locator("tr", has_text=task_id)
    expect(row).to_contain_text("queued")
    expect(row).to_contain_text("2 ahead in queue")
    expect(page.get_by_role("progressbar", name=f"Progress of task {task_id}")).to_have_attribute("value", "0")
    expect(row.get_by_role("button", name=f"Cancel task {task_id}")).to_be_visible()
    row.get_by_role("button", name=f"Details of task {task_id}").click()
    dialog = page.get_by_role("dialog", name=f"Task {task_id}")
    expect(dialog.locator("#task-timeline")).to_contain_text("Queued: 2 ahead in queue")
    visit.shot("tasks-queued")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.unroute("**/v1/tasks?limit=20")
    expect(row).to_contain_text("succeeded", timeout=SLOW)  # the next refresh, no Refresh pressed
    expect(row).not_to_contain_text("in queue")

    # and a failed one (the test models do not fail): its error is shown readably
    def failed(route: Route) -> None:
        answer = route.fetch()
        listing = answer.json()
        for task in listing["data"]:
            if task["id"] == task_id:
                task.update(
                    status="failed", data=None, error={"code": "upstream_error", "message": "the upstream said no"}
                )
        route.fulfill(response=answer, body=json.dumps(listing))

    page.route("**/v1/tasks?limit=20", failed)
    expect(row).to_contain_text("failed", timeout=SLOW)
    row.get_by_role("button", name=f"Details of task {task_id}").click()
    expect(dialog.locator("#task-timeline")).to_contain_text("Failed")
    failure = dialog.get_by_role("region", name="Error")
    expect(failure).to_contain_text("the upstream said no (upstream_error)")
    expect(dialog.locator("#task-outputs")).to_contain_text("the task did not succeed")
    visit.shot("tasks-failed-detail")
    dialog.get_by_role("button", name="Close").click()
    page.unroute("**/v1/tasks?limit=20")


def test_detail_shows_timeline_outputs_and_deliveries_and_an_admin_redelivers(
    gw: ServerProc, admin: Api, visits: Any
) -> None:
    receiver = Receiver()
    try:
        key_id, secret = admin.new_key(name="hooked")
        mine = Api(gw, secret)
        ok_id = create(mine, model="test/test", size="64x64", callback_url=receiver.url + "/ok")
        gone_id = create(mine, model="test/test", size="64x64", callback_url=receiver.url + "/gone")
        for task_id in (ok_id, gone_id):
            path = f"/v1/tasks/{task_id}/deliveries"
            wait_until(lambda p=path: [d for d in mine.ok("GET", p)["data"] if d["status"] != "pending"], 30, path)

        visit = visits()
        page = visit.sign_in(secret)
        table = open_tasks(page)
        opener = table.get_by_role("button", name=f"Details of task {ok_id}")
        opener.click()
        dialog = page.get_by_role("dialog", name=f"Task {ok_id}")
        expect(dialog).to_be_visible()
        timeline = dialog.locator("#task-timeline")
        expect(timeline).to_contain_text("Created")
        expect(timeline).to_contain_text("Started")
        expect(timeline).to_contain_text("Completed")
        expect(timeline).to_contain_text("in all")
        expect(dialog.locator("#task-request")).to_contain_text("64x64")
        expect(dialog.locator("#task-request")).to_contain_text("test/test")
        img = dialog.locator("#task-outputs img")
        expect(img).to_have_count(1)
        page.wait_for_function("() => document.querySelector('#task-outputs img')?.complete")
        assert img.evaluate("i => i.naturalWidth") == 64
        assert "/v1/files/" in (dialog.get_by_role("link", name="Open image 1").get_attribute("href") or "")
        deliveries = dialog.locator("#task-deliveries")
        expect(deliveries).to_contain_text(receiver.url + "/ok")
        expect(deliveries).to_contain_text("delivered")
        expect(deliveries).to_contain_text("HTTP 204")
        expect(dialog.get_by_role("button", name=re.compile("^Redeliver"))).to_have_count(0)  # admins only
        expect(dialog.locator("#task-failure-part")).to_be_hidden()
        visit.shot("tasks-detail")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(opener).to_be_focused()

        visit = visits()
        page = visit.sign_in(admin.key or "")
        table = open_tasks(page)
        page.get_by_label("Filter by key").select_option(key_id)
        expect(table.locator("tbody tr")).to_have_count(2)
        table.get_by_role("button", name=f"Details of task {gone_id}").click()
        dialog = page.get_by_role("dialog", name=f"Task {gone_id}")
        upstream = dialog.locator("#task-upstream")
        expect(upstream).to_contain_text("hooked")
        expect(upstream).to_contain_text("Attempts")
        expect(upstream).to_contain_text("builtin")  # provider and deployment
        expect(dialog.locator("#task-request")).to_contain_text("a tasks tab")  # the request as recorded
        deliveries = dialog.locator("#task-deliveries")
        expect(deliveries).to_contain_text(receiver.url + "/gone")
        expect(deliveries).to_contain_text("stopped")
        expect(deliveries).to_contain_text("HTTP 410")
        expect(deliveries).to_contain_text("1 attempt(s)")
        delivery_id = admin.ok("GET", f"/admin/v1/tasks/{gone_id}/deliveries")["data"][0]["id"]
        dialog.get_by_role("button", name=f"Redeliver webhook {delivery_id}").click()
        expect(dialog.locator("#task-detail-status")).to_contain_text(f"Webhook {delivery_id} queued again")
        expect(deliveries).to_contain_text("2 attempt(s)", timeout=SLOW)  # the dialog keeps itself current
        expect(deliveries.get_by_role("list", name=f"Attempts of delivery {delivery_id}").locator("li")).to_have_count(
            2
        )
        assert len(receiver.for_task(gone_id)) == 2
        visit.shot("tasks-detail-redelivered")
        dialog.get_by_role("button", name="Close").click()
        expect(table.get_by_role("button", name=f"Details of task {gone_id}")).to_be_focused()
    finally:
        receiver.close()


def test_admin_filters_by_key_model_status_and_date_and_a_key_sees_only_its_own(
    gw: ServerProc, admin: Api, visits: Any
) -> None:
    a_id, a_secret = admin.new_key(name="filter-a")
    b_id, b_secret = admin.new_key(name="filter-b")
    a, b = Api(gw, a_secret), Api(gw, b_secret)
    a_done = create(a, model="test/test")
    a_priced = create(a, model="test/priced")
    b_canceled = create(b, n=4)
    b.ok("POST", f"/v1/tasks/{b_canceled}/cancel")
    for api, task_id in ((a, a_done), (a, a_priced)):
        wait_until(lambda api=api, t=task_id: api.ok("GET", f"/v1/tasks/{t}")["status"] == "succeeded", 30, task_id)

    visit = visits()
    page = visit.sign_in(admin.key or "")
    table = open_tasks(page)
    rows = table.locator("tbody tr")
    expect(table.get_by_role("columnheader", name="Key")).to_be_visible()
    page.get_by_label("Filter by key").select_option(a_id)
    expect(rows).to_have_count(2)
    expect(table).to_contain_text(a_done)
    expect(table).to_contain_text("filter-a")
    expect(table).not_to_contain_text(b_canceled)

    page.get_by_label("Filter by model").fill("test/priced")
    page.get_by_label("Filter by model").press("Enter")
    expect(rows).to_have_count(1)
    expect(table).to_contain_text(a_priced)

    page.get_by_role("button", name="Clear filters").click()
    page.get_by_label("Filter by key").select_option(b_id)
    page.get_by_label("Filter by status").select_option("canceled")
    expect(rows).to_have_count(1)
    expect(table).to_contain_text(b_canceled)
    expect(table).to_contain_text("filter-b")
    page.get_by_label("Filter by status").select_option("succeeded")
    expect(rows).to_have_count(0)
    expect(page.locator("#tasks-status")).to_have_text("No tasks match these filters.")

    page.get_by_label("Filter by status").select_option("")
    page.get_by_label("Filter by key").select_option(a_id)
    expect(rows).to_have_count(2)
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    page.get_by_label("Created from").fill(tomorrow)
    expect(rows).to_have_count(0)
    page.get_by_label("Created from").fill(date.today().isoformat())
    page.get_by_label("Created to").fill((date.today() - timedelta(days=1)).isoformat())
    expect(page.locator("#tasks-error")).to_contain_text("before the 'Created from' date")
    page.evaluate("""() => {
        window.redrawn = 0;
        new MutationObserver(() => { window.redrawn += 1; })
            .observe(document.getElementById("tasks-error"), { childList: true, subtree: true, characterData: true });
    }""")
    page.wait_for_timeout(4500)  # two refresh periods: the alert is not redrawn (nor read out) again
    assert page.evaluate("() => window.redrawn") == 0
    page.get_by_label("Created to").fill(date.today().isoformat())
    expect(page.locator("#tasks-error")).to_be_hidden()
    expect(rows).to_have_count(2)
    visit.shot("tasks-admin-filters")

    visit = visits()
    page = visit.sign_in(a_secret)
    table = open_tasks(page)
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table).to_contain_text(a_done)
    expect(table).not_to_contain_text(b_canceled)
    expect(table.get_by_role("columnheader", name="Key")).to_have_count(0)
    expect(page.locator("#tasks-filters")).to_be_hidden()


def test_load_more_appends_older_tasks_and_the_live_refresh_keeps_them(gw: ServerProc, admin: Api, visits: Any) -> None:
    _, secret = admin.new_key(name="many-tasks")
    mine = Api(gw, secret)
    for i in range(25):  # quick sync generations
        r = mine("POST", "/v1/images/generations", json={"model": "test/test", "prompt": f"page {i}", "size": "64x64"})
        assert r.status_code == 200, r.text
    listed = mine("GET", "/v1/tasks", params={"limit": 100}).json()["data"]  # newest first
    assert len(listed) >= 25, listed
    page = visits().sign_in(secret)
    newest: list[str] = []  # the live refresh's requests: the newest page, no cursor
    page.on("request", lambda q: newest.append(q.url) if "/v1/tasks?" in q.url and "after=" not in q.url else None)
    table = open_tasks(page)
    body = table.locator("tbody tr")
    more = page.get_by_role("button", name="Load more")
    expect(body).to_have_count(20)
    expect(more).to_be_visible()
    expect(table.locator("tbody tr").first).to_have_attribute("data-task-id", listed[0]["id"])

    more.click()
    expect(body).to_have_count(len(listed))
    expect(more).to_be_hidden()
    expect(page.get_by_role("button", name=f"Details of task {listed[20]['id']}")).to_be_focused()  # not lost
    assert body.evaluate_all("(trs) => trs.map((tr) => tr.dataset.taskId)") == [t["id"] for t in listed]
    expect(page.locator("#tasks-status")).to_contain_text(f"{len(listed)} task(s)")

    asked = len(newest)
    # a live refresh (newest page only) comes and goes: waited on as an event, not for a time
    page.wait_for_event("requestfinished", lambda q: "/v1/tasks?" in q.url and "after=" not in q.url, timeout=SLOW)
    assert len(newest) > asked
    expect(body).to_have_count(len(listed))
    expect(more).to_be_hidden()
    for task in (listed[0], listed[20], listed[-1]):  # the newest, the first and the last of the older page
        expect(table.locator(f'tr[data-task-id="{task["id"]}"]')).to_contain_text("succeeded")

    r = mine("POST", "/v1/images/generations", json={"model": "test/test", "prompt": "one more", "size": "64x64"})
    assert r.status_code == 200, r.text
    newer = r.headers["x-imagegate-task-id"]  # on top after a live refresh; the one it pushes off page 1 stays
    expect(body.first).to_have_attribute("data-task-id", newer)
    expect(body).to_have_count(len(listed) + 1)
    ids = [newer] + [t["id"] for t in listed]
    assert body.evaluate_all("(trs) => trs.map((tr) => tr.dataset.taskId)") == ids

    page.get_by_role("button", name="Refresh").click()  # starts over from the newest page
    expect(body).to_have_count(20)
    expect(more).to_be_visible()
