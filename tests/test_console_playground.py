"""The console's Playground, driven in headless Chromium (Playwright) against a real server: an async
task watched on a live progress bar (and one canceled, and one left behind on sign-out), an edit of an
uploaded or dropped picture under a painted mask (the result checked pixel by pixel with Pillow), the
form following each model's capabilities, a streamed run, and the request copied as curl, Python (the
openai SDK) and JS (fetch) then run for real. Phone width keeps everything inside the viewport, and the
mask painter takes a finger there."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
from PIL import Image
from playwright.sync_api import Page, Route, expect

from tests.admin_support import Api
from tests.conftest import ServerProc
from tests.console_support import PHONE, admin, browser, gw, visits

__all__ = ["admin", "browser", "gw", "visits"]  # the fixtures this module uses

INPUT_RGB = (30, 120, 200)
ENV_KEY = "IMAGEGATE_API_KEY"


def _png(path: Path, size: int = 64, rgb: tuple[int, int, int] = INPUT_RGB) -> Path:
    Image.new("RGB", (size, size), rgb).save(path)
    return path


def _picture(gw: ServerProc, href: str) -> Image.Image:
    """The image behind a result's link (a gateway file, or on the cluster profile a presigned S3 link)."""
    r = httpx.get(urljoin(gw.url + "/console", href), timeout=30)
    assert r.status_code == 200, (href, r.status_code, r.text[:300])
    return Image.open(io.BytesIO(r.content)).convert("RGB")


def _loaded(page: Page) -> Any:
    img = page.locator("#results img").first
    expect(img).to_be_visible(timeout=60_000)
    page.wait_for_function("() => [...document.querySelectorAll('#results img')].every(i => i.complete)")
    return img


def _edit_mode(page: Page) -> None:
    page.get_by_role("radio", name="Edit").check()
    expect(page.get_by_label("Input images")).to_be_visible()


def _paint_across_the_middle(page: Page) -> None:
    """A horizontal stroke across the middle of the first input (the mask painter's canvas)."""
    canvas = page.locator("#mask-canvas")
    expect(canvas).to_be_visible()
    page.wait_for_function("() => document.getElementById('mask-canvas').width > 0")  # its picture loaded
    page.get_by_label("Brush size").fill("48")
    box = canvas.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] * 0.5
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(box["x"] + box["width"] * (0.3 + 0.04 * step), y)
    page.mouse.up()


def test_async_generation_shows_live_progress_then_the_image(gw: ServerProc, admin: Api, visits: Any) -> None:
    visit = visits()
    page = visit.sign_in(admin.key or "")
    page.get_by_label("Model", exact=True).select_option("test/slow")
    page.get_by_label("Size", exact=True).select_option("256x256")
    page.get_by_label("Prompt", exact=True).fill("a lighthouse on a cliff at dusk, warm light in the fog")
    page.get_by_label("Run as a task (async)").check()
    page.get_by_role("button", name="Generate").click()
    bar = page.get_by_label("Task progress")
    expect(bar).to_be_visible()
    expect(page.locator("#task-state")).to_contain_text("running")
    expect(page.get_by_role("button", name="Cancel task")).to_be_visible()
    page.wait_for_function(
        "() => { const v = document.getElementById('task-progress').value; return v > 0 && v < 100; }"
    )
    visit.shot("playground-task-running")
    img = _loaded(page)
    assert img.evaluate("i => i.naturalWidth") == 256 and img.evaluate("i => i.naturalHeight") == 256
    assert bar.evaluate("p => p.value") == 100
    expect(page.locator("#task-state")).to_contain_text("succeeded")
    expect(page.locator("#generate-status")).to_contain_text("Done: 1 image(s)")
    expect(page.locator("#results .facts")).to_contain_text("cost $0.01")
    expect(page.locator("#results .facts")).to_contain_text("latency")
    expect(page.get_by_role("link", name="Download")).to_have_attribute("download", "imagegate-test-slow-1.png")
    expect(page.get_by_role("button", name="Cancel task")).to_be_hidden()
    task = admin.ok("GET", "/v1/tasks?limit=1")["data"][0]
    assert task["model"] == "test/slow" and task["status"] == "succeeded"
    visit.shot("playground", doc=True)


def test_an_async_task_can_be_canceled_and_sign_out_stops_watching(gw: ServerProc, admin: Api, visits: Any) -> None:
    visit = visits()
    page = visit.sign_in(admin.key or "")
    page.get_by_label("Model", exact=True).select_option("test/slow")
    page.get_by_label("Size", exact=True).select_option("64x64")
    page.get_by_label("Prompt", exact=True).fill("a canceled thought")
    page.get_by_label("Run as a task (async)").check()
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#task-state")).to_contain_text("running")
    page.get_by_role("button", name="Cancel task").click()
    expect(page.locator("#task-state")).to_contain_text("canceled")
    expect(page.locator("#generate-status")).to_contain_text("The task was canceled.")
    expect(page.get_by_role("button", name="Cancel task")).to_be_hidden()
    expect(page.get_by_role("button", name="Generate")).to_be_enabled()
    task = admin.ok("GET", "/v1/tasks?limit=1")["data"][0]
    assert task["status"] == "canceled", task
    visit.shot("playground-task-canceled")

    page.get_by_label("Prompt", exact=True).fill("left behind")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#task-state")).to_contain_text("running")
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/v1/tasks/" in r.url else None)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    polls.clear()
    page.wait_for_timeout(1500)  # three poll periods: none may come
    assert polls == []


def test_edit_an_uploaded_picture_under_a_painted_mask(gw: ServerProc, admin: Api, visits: Any, tmp_path: Path) -> None:
    source = _png(tmp_path / "input.png")
    visit = visits()
    page = visit.sign_in(admin.key or "")
    page.get_by_label("Size", exact=True).select_option("64x64")
    page.get_by_label("Prompt", exact=True).fill("a red door in a blue wall")
    _edit_mode(page)
    page.get_by_role("button", name="Generate").click()  # no input yet: said so, nothing sent
    expect(page.locator("#generate-error")).to_contain_text("Add at least one input image")
    page.get_by_label("Input images").set_input_files(source)
    expect(page.get_by_role("img", name="Input image 1: input.png")).to_be_visible()
    expect(page.locator("#generate-error")).to_be_hidden()
    _paint_across_the_middle(page)
    visit.shot("playground-mask")
    page.get_by_role("button", name="Generate").click()
    img = _loaded(page)
    assert img.evaluate("i => i.naturalWidth") == 64
    expect(page.locator("#generate-error")).to_be_hidden()
    out = _picture(gw, page.get_by_role("link", name="Download").get_attribute("href") or "")
    assert out.size == (64, 64)
    px = out.load()
    assert px is not None
    kept = [px[x, y] for y in (*range(0, 20), *range(45, 64)) for x in range(64)]
    kept += [px[x, y] for y in range(64) for x in (*range(0, 8), *range(58, 64))]
    assert set(kept) == {INPUT_RGB}  # what the mask protects is the input, exactly
    painted = [px[x, 32] for x in range(24, 40)]
    assert any(p != INPUT_RGB for p in painted), painted  # the painted band changed
    task = admin.ok("GET", "/v1/tasks?limit=1")["data"][0]
    assert task["mode"] == "edit", task
    visit.shot("playground-edit-result")

    # the result, by its URL, is the next edit's input; the painter sizes its mask from that picture
    href = urljoin(gw.url + "/console", page.get_by_role("link", name="Download").get_attribute("href") or "")
    page.get_by_role("button", name="Remove input 1 (input.png)").click()
    expect(page.get_by_role("list", name="Inputs chosen").get_by_role("listitem")).to_have_count(0)
    expect(page.locator("#mask-field")).to_be_hidden()
    page.get_by_label("Image URL").fill(href)
    page.get_by_role("button", name="Add URL").click()
    expect(page.get_by_role("list", name="Inputs chosen").get_by_role("listitem")).to_have_count(1)
    _paint_across_the_middle(page)
    page.get_by_label("Prompt", exact=True).fill("now the door is green")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#generate-status")).to_contain_text("Done")
    _loaded(page)
    again = _picture(gw, page.get_by_role("link", name="Download").get_attribute("href") or "")
    top = (0, 0, 64, 20)
    assert again.crop(top).tobytes() == out.crop(top).tobytes()  # kept from the URL's picture


def test_a_dropped_picture_is_an_input_and_the_model_bounds_how_many(
    gw: ServerProc, admin: Api, visits: Any, tmp_path: Path
) -> None:
    visit = visits()
    page = visit.sign_in(admin.key or "")
    page.get_by_label("Model", exact=True).select_option("test/slow")  # at most 4 input images
    _edit_mode(page)
    data = base64.b64encode(_png(tmp_path / "drop.png", 48, (200, 40, 40)).read_bytes()).decode()
    page.evaluate(
        """([data, count]) => {
          const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
          const dt = new DataTransfer();
          for (let i = 0; i < count; i++) dt.items.add(new File([bytes], `drop-${i + 1}.png`, { type: "image/png" }));
          const zone = document.getElementById("drop-zone");
          zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
          zone.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
        }""",
        [data, 5],
    )
    previews = page.get_by_role("list", name="Inputs chosen").get_by_role("listitem")
    expect(previews).to_have_count(4)
    expect(page.locator("#inputs-count")).to_contain_text("4 of at most 4 input image(s). 1 file(s) not added")
    page.get_by_role("button", name="Remove input 2 (drop-2.png)").click()
    expect(previews).to_have_count(3)
    expect(page.get_by_role("button", name="Remove input 2 (drop-3.png)")).to_be_focused()
    page.get_by_label("Model", exact=True).select_option("test/test")
    page.get_by_label("Size", exact=True).select_option("64x64")
    page.get_by_label("Prompt", exact=True).fill("three red squares")
    page.get_by_role("button", name="Generate").click()  # no paint: no mask, the inputs side by side
    img = _loaded(page)
    assert img.evaluate("i => i.naturalWidth") == 64
    task = admin.ok("GET", "/v1/tasks?limit=1")["data"][0]
    assert task["mode"] == "edit", task


def test_fields_follow_the_model(gw: ServerProc, admin: Api, visits: Any) -> None:
    catalog = {m["id"]: m for m in admin.ok("GET", "/v1/models?all=true")["data"]}
    extra = [dict(catalog["dall-e-3"], ready=True), dict(catalog["flux-pro-1.0-fill"], ready=True)]

    def listing(route: Route) -> None:  # two catalog models without credentials here, shown as ready
        answer = route.fetch()
        body = answer.json()
        body["data"] += extra
        route.fulfill(response=answer, body=json.dumps(body))

    visit = visits()
    visit.page.route("**/v1/models", listing)
    page = visit.sign_in(admin.key or "")
    edit = page.get_by_role("radio", name="Edit")
    expect(edit).to_be_visible()
    for label in ("Resolution", "Aspect ratio", "Quality", "Style", "Background", "Output format", "Negative prompt"):
        expect(page.get_by_label(label, exact=True)).to_be_visible()
    expect(page.get_by_label("Moderation")).to_be_hidden()
    expect(page.get_by_label("Images", exact=True)).to_have_attribute("max", "10")
    assert (
        page.locator("#aspect-ratio option").all_inner_texts()[1:]
        == catalog["test/test"]["capabilities"]["aspect_ratios"]
    )

    page.get_by_label("Model", exact=True).select_option("test/slow")
    expect(page.get_by_label("Images", exact=True)).to_have_attribute("max", "4")
    for label in ("Resolution", "Aspect ratio", "Quality", "Style", "Negative prompt"):
        expect(page.get_by_label(label, exact=True)).to_be_hidden()
    edit.check()
    expect(page.get_by_label("Input fidelity")).to_be_hidden()

    page.get_by_label("Model", exact=True).select_option("dall-e-3")  # generate only, one image, fixed sizes
    expect(page.get_by_role("group", name="Mode")).to_be_hidden()  # one mode: nothing to choose
    expect(edit).to_be_hidden()
    assert page.locator("#mode-generate").is_checked()
    expect(page.get_by_label("Input images")).to_be_hidden()
    expect(page.get_by_label("Images", exact=True)).to_be_hidden()
    sizes = page.locator("#size option").all_inner_texts()
    assert sizes[1:] == catalog["dall-e-3"]["capabilities"]["sizes"] and "custom…" not in sizes, sizes
    assert page.locator("#quality option").all_inner_texts()[1:] == catalog["dall-e-3"]["capabilities"]["qualities"]
    expect(page.get_by_label("Style")).to_be_visible()
    expect(page.get_by_label("Background")).to_be_hidden()

    page.get_by_label("Model", exact=True).select_option("flux-pro-1.0-fill")  # edit only: no Generate choice
    expect(page.get_by_role("group", name="Mode")).to_be_hidden()
    expect(page.get_by_label("Input images")).to_be_visible()
    expect(page.locator("#inputs-count")).to_contain_text("0 of at most 1")
    visit.shot("playground-fields")


def _snippet(page: Page, lang: str) -> str:
    page.get_by_role("button", name=f"Copy as {lang}").click()
    expect(page.locator("#snippet-status")).to_contain_text(lang)
    return page.locator("#snippet").inner_text()


def _run(cmd: list[str], key: str, cwd: Path) -> dict[str, Any]:
    env = {**os.environ, ENV_KEY: key}
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (cmd, done.stdout, done.stderr)
    out = done.stdout
    return json.loads(out[out.index("{") :])  # node prints its status first


def test_the_request_as_curl_python_and_js_runs(gw: ServerProc, admin: Api, visits: Any, tmp_path: Path) -> None:
    key = admin.key or ""
    visit = visits()
    visit.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = visit.sign_in(key)
    page.get_by_label("Size", exact=True).select_option("64x64")
    page.get_by_label("Prompt", exact=True).fill('it\'s a "quoted" prompt; with $HOME and `ticks`')
    page.get_by_label("Style").select_option("natural")
    page.get_by_label("Negative prompt").fill("blur")
    curl = _snippet(page, "curl")
    assert f"${ENV_KEY}" in curl and key not in curl and f"{gw.url}/v1/images/generations" in curl, curl
    assert page.evaluate("() => navigator.clipboard.readText()") == curl
    visit.shot("playground-curl")
    python = _snippet(page, "Python")
    (tmp_path / "generate.mjs").write_text(_snippet(page, "JS"))
    runs = [(["bash", "-c", curl], "curl"), ([sys.executable, "-c", python], "Python")]
    if shutil.which("node") is not None:  # the real-client tests need Node; here it is a bonus
        runs.append((["node", "generate.mjs"], "JS"))
    for cmd, name in runs:
        answer = _run(cmd, key, tmp_path)
        assert _picture(gw, answer["data"][0]["url"]).size == (64, 64), name
    assert "client.images.generate(" in python and '"negative_prompt": "blur"' in python, python
    assert 'style="natural"' in python and key not in python, python

    page.get_by_label("Run as a task (async)").check()
    answer = _run(["bash", "-c", _snippet(page, "curl")], key, tmp_path)
    assert answer["object"] == "image.task" and answer["status"] in ("queued", "running", "succeeded"), answer

    _png(tmp_path / "input.png")
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 24, 64, 40))
    mask.save(tmp_path / "mask.png")
    page.get_by_label("Run as a task (async)").uncheck()
    _edit_mode(page)
    page.get_by_label("Input images").set_input_files(tmp_path / "input.png")
    _paint_across_the_middle(page)
    curl = _snippet(page, "curl")
    assert "-F 'image[]=@input.png'" in curl and "-F 'mask=@mask.png'" in curl and "images/edits" in curl, curl
    js = _snippet(page, "JS")
    (tmp_path / "edit.mjs").write_text(js)
    runs = [(["bash", "-c", curl], "curl"), ([sys.executable, "-c", _snippet(page, "Python")], "Python")]
    if shutil.which("node") is not None:
        runs.append((["node", "edit.mjs"], "JS"))
    for cmd, name in runs:
        answer = _run(cmd, key, tmp_path)
        picture = _picture(gw, answer["data"][0]["url"])
        assert picture.getpixel((5, 5)) == INPUT_RGB and picture.getpixel((60, 60)) == INPUT_RGB, name
    visit.shot("playground-js")


def test_phone_width_with_the_mask_painter_and_a_snippet(
    gw: ServerProc, admin: Api, visits: Any, tmp_path: Path
) -> None:
    _, secret = admin.new_key(name="phone")  # a plain key: the playground's own tabs
    visit = visits(PHONE)
    page = visit.sign_in(secret)
    _edit_mode(page)
    page.get_by_label("Input images").set_input_files([_png(tmp_path / "a-rather-long-file-name-for-a-phone.png", 512)])
    canvas = page.locator("#mask-canvas")
    expect(canvas).to_be_visible()
    page.wait_for_function("() => document.getElementById('mask-canvas').width === 512")
    canvas.scroll_into_view_if_needed()  # touch points are in viewport coordinates
    box = canvas.bounding_box()
    assert box is not None
    cdp = visit.context.new_cdp_session(page)  # a finger, as the phone's touch screen sends it
    y = box["y"] + box["height"] / 2
    for kind, x in (("touchStart", 0.2), ("touchMove", 0.5), ("touchMove", 0.8), ("touchEnd", None)):
        points = [] if x is None else [{"x": box["x"] + box["width"] * x, "y": y}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})
    painted = "([x, y]) => document.getElementById('mask-canvas').getContext('2d').getImageData(x, y, 1, 1).data[3]"
    assert page.evaluate(painted, [256, 256]) == 255 and page.evaluate(painted, [256, 20]) == 0
    page.get_by_label("Prompt", exact=True).fill("a phone-sized edit")
    _snippet(page, "curl")
    expect(page.locator("#snippet")).to_be_visible()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width  # nothing wider than the phone
    visit.shot("playground-phone-edit")


def test_refusals_and_failed_tasks_are_readable(gw: ServerProc, admin: Api, visits: Any) -> None:
    visit = visits()
    page = visit.sign_in(admin.key or "")
    page.get_by_label("Size", exact=True).select_option("64x64")
    page.get_by_label("Prompt", exact=True).fill("an edit of nothing")
    _edit_mode(page)
    page.get_by_label("Image URL").fill("not a link")
    page.get_by_role("button", name="Add URL").click()
    expect(page.locator("#inputs-count")).to_contain_text("Enter an http(s) address of an image.")
    expect(page.get_by_label("Image URL")).to_be_focused()
    page.get_by_label("Image URL").fill(f"{gw.url}/v1/files/no-such-file.png")
    page.keyboard.press("Enter")  # adds it, does not submit the form
    expect(page.get_by_role("list", name="Inputs chosen").get_by_role("listitem")).to_have_count(1)
    expect(page.locator("#mask-note")).to_contain_text("does not load here")
    page.get_by_role("button", name="Generate").click()
    alert = page.locator("#generate-error")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("Error 4")
    expect(alert).to_contain_text("parameter: image")
    visit.shot("playground-edit-refused")

    def failed(route: Route) -> None:  # the task's next poll says it failed upstream
        answer = route.fetch()
        task = answer.json()
        task.update(status="failed", progress=None, error={"code": "upstream_error", "message": "the model fell over"})
        route.fulfill(response=answer, body=json.dumps(task))

    page.get_by_role("radio", name="Generate").check()
    page.get_by_label("Model", exact=True).select_option("test/slow")
    page.get_by_label("Run as a task (async)").check()
    page.route("**/v1/tasks/img_*", failed)
    page.get_by_role("button", name="Generate").click()
    expect(alert).to_contain_text("The task failed: the model fell over (upstream_error)")
    expect(page.locator("#task-state")).to_contain_text("failed")
    expect(page.get_by_role("button", name="Cancel task")).to_be_hidden()
    expect(page.get_by_role("button", name="Generate")).to_be_enabled()
    visit.shot("playground-task-failed")


def test_a_streamed_generation_and_its_python_snippet(gw: ServerProc, admin: Api, visits: Any, tmp_path: Path) -> None:
    key = admin.key or ""
    visit = visits()
    page = visit.sign_in(key)
    page.get_by_label("Size", exact=True).select_option("64x64")
    page.get_by_label("Prompt", exact=True).fill("a kite over the dunes")
    page.get_by_label("Run as a task (async)").check()
    page.get_by_label("Stream previews").check()  # one or the other
    expect(page.get_by_label("Run as a task (async)")).not_to_be_checked()
    page.get_by_role("button", name="Generate").click()
    img = _loaded(page)
    assert img.evaluate("i => i.naturalWidth") == 64
    assert (img.get_attribute("src") or "").startswith("data:image/png;base64,")
    expect(page.locator("#generate-status")).to_contain_text("Done: 1 image(s)")
    expect(page.locator("#results .facts")).to_contain_text("64x64")
    expect(page.get_by_role("link", name="Download")).to_have_attribute("download", "imagegate-image-1.png")
    python = _snippet(page, "Python")
    assert "stream=True" in python and "partial_images=2" in python, python
    env = {**os.environ, ENV_KEY: key}
    done = subprocess.run(
        [sys.executable, "-c", python], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "image_generation.completed" in done.stdout, (done.stdout, done.stderr)
    curl = _snippet(page, "curl")
    done = subprocess.run(["bash", "-c", curl], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "event: image_generation.completed" in done.stdout, done.stderr
    visit.shot("playground-streamed")

    def previews_then_done(route: Route) -> None:  # a model that makes previews: two, then the image
        def frame(kind: str, rgb: tuple[int, int, int], **more: Any) -> str:
            buf = io.BytesIO()
            Image.new("RGB", (64, 64), rgb).save(buf, "PNG")
            data = {"type": kind, "b64_json": base64.b64encode(buf.getvalue()).decode(), "size": "64x64", **more}
            return f"event: {kind}\ndata: {json.dumps(data)}\n\n"

        body = ": keep-alive\n\n" + frame("image_generation.partial_image", (9, 9, 9), partial_image_index=0)
        body += frame("image_generation.partial_image", (99, 99, 99), partial_image_index=1)
        body += frame("image_generation.completed", (200, 100, 0), output_format="png")
        route.fulfill(status=200, content_type="text/event-stream", body=body)

    page.evaluate(
        """() => { window.seen = [];
          new MutationObserver((rs) => rs.forEach((r) => r.addedNodes.forEach((n) => window.seen.push(n.alt))))
            .observe(document.getElementById('previews'), { childList: true }); }"""
    )
    page.route("**/v1/images/generations", previews_then_done)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#generate-status")).to_contain_text("Done: 1 image(s)")
    assert page.evaluate("() => window.seen") == [
        "Preview 1 of the image being made",
        "Preview 2 of the image being made",
    ]
    expect(page.locator("#previews")).to_be_hidden()
    page.unroute("**/v1/images/generations")

    _edit_mode(page)  # a streamed edit: multipart, the same events named image_edit.*
    page.get_by_label("Input images").set_input_files(_png(tmp_path / "input.png"))
    _paint_across_the_middle(page)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#generate-status")).to_contain_text("Done: 1 image(s)")
    img = _loaded(page)
    assert img.evaluate("i => i.naturalWidth") == 64
    top = img.evaluate(
        "i => { const c = document.createElement('canvas'); c.width = c.height = 64;"
        " const x = c.getContext('2d'); x.drawImage(i, 0, 0); return [...x.getImageData(5, 5, 1, 1).data]; }"
    )
    assert tuple(top[:3]) == INPUT_RGB, top  # the mask kept the corner
