"""Test parts for the console's browser tests: a server with the console catalog (a priced and a slow
test model), headless Debian Chromium driven by Playwright, and `Visit`, one browser context on the
console that refuses (and records) any request off this machine and any script error.

Screenshots go to the test's temp dir; on a failure they are listed, with their bytes in base64, in
the failed test's report (CI logs keep them). With IMAGEGATE_DOC_SHOTS=1, `Visit.shot(..., doc=True)`
also writes the README's screenshots under docs/.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect, sync_playwright

from tests.admin_support import admin
from tests.conftest import ServerProc

__all__ = ["admin", "browser", "gw", "visits"]  # the fixtures a console test module imports
CHROMIUM = Path("/usr/bin/chromium")
LOOPBACK = {"127.0.0.1", "localhost"}
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1200, "height": 900}
CONSOLE_CATALOG = Path(__file__).parent / "data" / "console-catalog.yaml"
DOCS = Path(__file__).parent.parent / "docs"
#: the most screenshot bytes one failed test copies into its report
REPORT_BYTES = 600_000


def start_console_server(tmp_path_factory: pytest.TempPathFactory) -> ServerProc:
    env = {"IMAGEGATE_ALLOW_PRIVATE_NETWORKS": "1", "OPENAI_API_KEY": ""}
    args = ["--config", str(CONSOLE_CATALOG)]
    return ServerProc(tmp_path_factory.mktemp("console"), env=env, args=args).start()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    srv = start_console_server(tmp_path_factory)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: install Debian's `chromium` package to run the console's browser tests"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


class Visit:
    """A fresh browser context on the console: any request off this machine is refused and recorded,
    and so is any script error."""

    def __init__(self, browser: Browser, gw: ServerProc, shots: Path, viewport: dict[str, int] | None = None) -> None:
        self.gw, self.shots = gw, shots
        self.context = browser.new_context(viewport=viewport or DESKTOP)  # type: ignore[arg-type]
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._guard)
        self.page: Page = self.context.new_page()
        self.page.on("console", self._logged)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _guard(self, route: Route) -> None:
        # the gateway, or on the cluster profile its S3 store's presigned links: both on loopback
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            self.foreign.append(route.request.url)
            route.abort()

    def _logged(self, message: ConsoleMessage) -> None:
        # the gateway's refusals (401, 403, 400) show as failed loads: the page handles those
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def sign_in(self, key: str) -> Page:
        page = self.page
        page.goto(self.gw.url + "/console")
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("tab", name="Playground")).to_be_visible()
        expect(page.get_by_label("Model", exact=True)).to_have_value("test/test")
        return page

    def shot(self, name: str, doc: bool = False) -> None:
        """A full-page screenshot in the test's temp dir; ``doc``: also the README's docs/console-NAME.png
        when IMAGEGATE_DOC_SHOTS=1 (the whole page, as on a desktop)."""
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)
        if doc and os.environ.get("IMAGEGATE_DOC_SHOTS") == "1":
            DOCS.mkdir(exist_ok=True)
            self.page.screenshot(path=str(DOCS / f"console-{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        assert self.foreign == [], self.foreign
        assert self.errors == [], self.errors


@pytest.fixture
def visits(browser: Browser, gw: ServerProc, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``visits(viewport=None) -> Visit``: each is closed (and checked) after the test; on a failure the
    pages are photographed first and every screenshot is attached to the report."""
    opened: list[Visit] = []

    def visit(viewport: dict[str, int] | None = None) -> Visit:
        v = Visit(browser, gw, tmp_path, viewport)
        opened.append(v)
        return v

    yield visit
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for i, v in enumerate(opened):
        if failed:
            try:
                v.page.screenshot(path=str(tmp_path / f"failure-{i}.png"), full_page=True)
            except Exception as exc:  # the page may be gone; the report says so
                (tmp_path / f"failure-{i}.txt").write_text(f"no screenshot: {exc}")
        if failed:
            v.context.close()
        else:
            v.close()
    if failed:
        attach_shots(request.node, tmp_path)


def attach_shots(item: pytest.Item, folder: Path) -> None:
    """Every screenshot of a failed test, as paths and base64 bytes, in its report (and so in CI's log)."""
    lines, budget = [], REPORT_BYTES
    for png in sorted(folder.glob("*.png"), key=lambda p: p.stat().st_mtime, reverse=True):
        data = png.read_bytes()
        lines.append(f"{png} ({len(data)} bytes)")
        if len(data) <= budget:
            budget -= len(data)
            lines.append(f"data:image/png;base64,{base64.b64encode(data).decode()}")
    item.add_report_section("teardown", "console screenshots", "\n".join(lines) or f"none in {folder}")
