"""The standalone sandbox upstream (``python -m imagegate.testing.server``) behind a real gateway.

One sandbox server and one ``imagegate serve`` with ``IMAGEGATE_SANDBOX_URL`` (not ``--sandbox``)
per module, both real processes on loopback: every provider in the catalog runs through its real
adapter, over real HTTP, and the sandbox's counters show each task reached its upstream once.
"""

from __future__ import annotations

import base64
import functools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from imagegate.catalog import Catalog, CatalogModel
from imagegate.catalog.models import SANDBOX_SECRET
from imagegate.providers.registry import provider_class
from imagegate.providers.toolkit import chunks, per_call
from tests.conftest import ServerProc, decode, free_port

DELAY_MS = 250  # IMAGEGATE_SANDBOX_DELAY_MS of the sandbox server: simulated work per image
TERMINAL = ("succeeded", "failed", "canceled")


class SandboxProc:
    """The sandbox server in its own process, as ``imagegate sandbox-server`` runs it."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._fh = open(log, "ab")  # noqa: SIM115  (the server's log, open for the life of its process)
        cmd = [sys.executable, "-m", "imagegate.testing.server", "--host", "127.0.0.1", "--port", str(self.port)]
        env = {**os.environ, "IMAGEGATE_SANDBOX_DELAY_MS": str(DELAY_MS)}
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._fh, stderr=subprocess.STDOUT)

    def wait_up(self, timeout: float = 30.0) -> SandboxProc:
        deadline = time.monotonic() + timeout
        while not self._up():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sandbox server did not come up:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)
        return self

    def _up(self) -> bool:
        try:
            return httpx.get(self.url + "/_sandbox/stats", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def submits(self) -> dict[str, int]:
        return dict(httpx.get(self.url + "/_sandbox/stats", timeout=10).json()["submits"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._fh.close()


@dataclass(frozen=True)
class Stack:
    sandbox: SandboxProc
    gateway: ServerProc
    headers: dict[str, str]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The sandbox server and a gateway pointed at it; both start at once (the gateway calls it only later)."""
    tmp = tmp_path_factory.mktemp("sandbox-server")
    sandbox = SandboxProc(tmp / "sandbox.log")
    gateway = ServerProc(tmp / "gw", env={"IMAGEGATE_SANDBOX_URL": sandbox.url})
    try:
        gateway.start()
        headers = {"Authorization": f"Bearer {gateway.create_key()}"}
        yield Stack(sandbox.wait_up(), gateway, headers)
    finally:
        gateway.stop()
        sandbox.stop()


@functools.cache
def catalog() -> Catalog:
    return Catalog.load(env={}, sandbox_url="http://sandbox.invalid:8900")


def first_model_per_provider() -> dict[str, CatalogModel]:
    """provider -> the first model (catalog order) whose first deployment it serves: what the router calls."""
    chosen: dict[str, CatalogModel] = {}
    for m in catalog().all():
        chosen.setdefault(m.deployments[0].provider, m)
    return chosen


def is_poll(m: CatalogModel) -> bool:
    return provider_class(m.deployments[0].provider).kind == "poll"


def submits_for(m: CatalogModel, n: int) -> int:
    """Upstream submissions a task of ``n`` images costs: one per fanned-out call."""
    return len(chunks(n, per_call(m.spec)))


# -- one generation through the gateway ---------------------------------------------------------


def images_of(body: dict[str, Any], headers: dict[str, str]) -> list[tuple[int, int]]:
    sizes = []
    for item in body["data"]:
        if item.get("b64_json"):
            data = base64.b64decode(item["b64_json"])
        else:
            r = httpx.get(item["url"], headers=headers, timeout=30)
            assert r.status_code == 200, r.text
            data = r.content
        sizes.append(decode(data).size)
    return sizes


def generate_sync(gw: ServerProc, headers: dict[str, str], model: str, n: int, prompt: str = "a lighthouse") -> Any:
    body = {"model": model, "prompt": prompt, "n": n, "response_format": "b64_json"}
    return httpx.post(gw.url + "/v1/images/generations", headers=headers, json=body, timeout=120)


def generate_async(gw: ServerProc, headers: dict[str, str], model: str, n: int = 1) -> tuple[dict[str, Any], list[str]]:
    """Create a task and poll it to its end: the final task object and every status seen before it."""
    body = {"model": model, "prompt": "a harbour at dawn", "n": n, "response_format": "b64_json"}
    r = httpx.post(gw.url + "/v1/images/generations?async=true", headers=headers, json=body, timeout=60)
    assert r.status_code == 202, r.text
    task, seen = r.json(), []
    deadline = time.monotonic() + 120
    while task["status"] not in TERMINAL:
        seen.append(task["status"])
        assert time.monotonic() < deadline, f"{model}: task still {task['status']}"
        time.sleep(0.05)
        r = httpx.get(f"{gw.url}/v1/images/generations/{task['id']}", headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        task = r.json()
    return task, seen


def run_sync(gw: ServerProc, headers: dict[str, str], m: CatalogModel, n: int) -> str | None:
    r = generate_sync(gw, headers, m.id, n)
    if r.status_code != 200:
        return f"{m.id} sync: HTTP {r.status_code} {r.text[:300]}"
    got = images_of(r.json(), headers)
    return None if len(got) == n else f"{m.id} sync: {len(got)} images, asked for {n}"


def run_async(gw: ServerProc, headers: dict[str, str], m: CatalogModel) -> str | None:
    task, _ = generate_async(gw, headers, m.id)
    if task["status"] != "succeeded":
        return f"{m.id} async: {task['status']} {task.get('error')}"
    return None if len(images_of(task, headers)) == 1 else f"{m.id} async: no image"


def in_parallel(jobs: Sequence[Callable[[], str | None]]) -> list[str]:
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return [e for e in pool.map(lambda job: job(), jobs) if e]


# -- the tests -----------------------------------------------------------------------------------


def test_every_provider_through_the_sandbox_server(stack: Stack) -> None:
    sandbox, gateway, headers = stack.sandbox, stack.gateway, stack.headers
    chosen = first_model_per_provider()
    listed = httpx.get(gateway.url + "/v1/models?all=true", headers=headers, timeout=10).json()["data"]
    assert {p for m in listed for p in m["providers"]} <= set(chosen) | {"builtin"}
    assert set(chosen) - {"builtin"} == set(sandbox.submits()), "every upstream provider has a fake to call"
    # one image per task: one submit each; then one model that fans out, asked for more images than
    # its catalog ``images_per_call`` (how many calls an adapter makes for n images is its own business
    # where the catalog declares nothing, so only a declared limit gives a count to expect)
    fan = next(m for m in catalog().all() if m.spec.images_per_call and m.spec.images_per_call < m.spec.max_n)
    runs: list[tuple[CatalogModel, int, bool]] = [(m, 1, False) for m in chosen.values()]
    runs += [(m, 1, True) for m in chosen.values() if is_poll(m)]
    runs.append((fan, per_call(fan.spec) + 1, False))
    expected = dict.fromkeys(sandbox.submits(), 0)
    for m, n, _ in runs:
        if m.deployments[0].provider != "builtin":
            expected[m.deployments[0].provider] += submits_for(m, n)
    before = sandbox.submits()
    jobs = [
        functools.partial(run_async, gateway, headers, m)
        if is_async
        else functools.partial(run_sync, gateway, headers, m, n)
        for m, n, is_async in runs
    ]
    errors = in_parallel(jobs)
    assert not errors, "\n".join(errors)
    after = sandbox.submits()
    assert {p: after[p] - before[p] for p in after} == expected


def test_moderation_trigger_is_a_400(stack: Stack) -> None:
    gateway, headers = stack.gateway, stack.headers
    chosen = first_model_per_provider()
    models = [chosen["openai"].id, chosen["bfl"].id]  # a sync provider and a poll one
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda m: generate_sync(gateway, headers, m, 1, "a cat [sandbox:moderated]"), models))
    for model, r in zip(models, answers, strict=True):
        assert r.status_code == 400, (model, r.text)
        assert r.json()["error"]["code"] == "content_policy_violation", (model, r.text)


def test_delay_env_is_honoured(stack: Stack) -> None:
    sandbox, gateway, headers = stack.sandbox, stack.gateway, stack.headers
    knobs = httpx.get(sandbox.url + "/_sandbox/config", timeout=10).json()
    assert set(knobs["delay_ms"].values()) == {DELAY_MS}
    chosen = first_model_per_provider()
    started = time.monotonic()
    task, seen = generate_async(gateway, headers, chosen["fal"].id)
    assert task["status"] == "succeeded" and time.monotonic() - started >= DELAY_MS / 1000
    assert seen and set(seen) <= {"queued", "running"}
    started = time.monotonic()
    r = generate_sync(gateway, headers, chosen["openai"].id, 1)
    assert r.status_code == 200 and time.monotonic() - started >= DELAY_MS / 1000


def test_urls_carry_the_provider_prefix(stack: Stack) -> None:
    sandbox = stack.sandbox
    r = httpx.post(
        sandbox.url + "/bfl/v1/flux-2-pro",
        headers={"x-key": SANDBOX_SECRET},
        json={"prompt": "a fox", "width": 512, "height": 512},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-imagegate-sandbox"] == "1"
    polling_url = r.json()["polling_url"]
    assert polling_url.startswith(sandbox.url + "/bfl/v1/get_result?id=")
    sample = None
    for _ in range(5):
        sample = httpx.get(polling_url, headers={"x-key": SANDBOX_SECRET}, timeout=10).json()["result"]
        if sample:
            break
    assert sample and sample["sample"].startswith(sandbox.url + "/bfl/_blobs/")
    assert decode(httpx.get(sample["sample"], timeout=10).content).size == (512, 512)
    other_name = f"http://localhost:{sandbox.port}"  # each client gets links on the name it used
    r = httpx.post(other_name + "/bfl/v1/flux-2-pro", headers={"x-key": SANDBOX_SECRET}, json={"prompt": "a fox"})
    assert r.json()["polling_url"].startswith(other_name + "/bfl/v1/get_result?id="), r.text
    r = httpx.get(sandbox.url + "/nothing/here", timeout=10)
    assert r.status_code == 404 and "providers" in r.json()["error"]


def test_reset_and_config(stack: Stack) -> None:
    sandbox = stack.sandbox
    r = httpx.post(sandbox.url + "/_sandbox/config", json={"polls_to_finish": -1}, timeout=10)
    assert r.status_code == 400
    r = httpx.post(sandbox.url + "/_sandbox/config", json={"provider": "kling", "polls_to_finish": 3}, timeout=10)
    assert r.status_code == 200 and r.json()["polls_to_finish"]["kling"] == 3
    assert r.json()["polls_to_finish"]["fal"] == 2
    httpx.post(sandbox.url + "/_sandbox/config", json={"provider": "kling", "polls_to_finish": 2}, timeout=10)
    stats = httpx.post(sandbox.url + "/_sandbox/reset", timeout=10).json()
    assert set(stats["submits"].values()) == {0} and not any(stats["calls"].values())


def test_gateway_on_a_sandbox_server_says_so(stack: Stack) -> None:
    assert httpx.get(stack.gateway.url + "/health", timeout=10).headers.get("x-imagegate-sandbox") == "1"


# -- catalog resolution (no processes) -----------------------------------------------------------


def test_catalog_points_every_upstream_at_the_sandbox() -> None:
    for m in catalog().all():
        for d in m.deployments:
            assert d.ready, d.id
            if d.provider == "builtin":
                assert d.base_url is None and not d.credentials
                continue
            assert d.base_url is not None and d.base_url.startswith(f"http://sandbox.invalid:8900/{d.provider}"), d
            assert set(d.credentials.values()) <= {SANDBOX_SECRET}
    deps = {d.id: d for m in catalog().all() for d in m.deployments}
    assert deps["dashscope-wan22-flash-intl"].base_url == "http://sandbox.invalid:8900/dashscope/api/v1"
    assert deps["lite-gpt-image-2"].base_url == "http://sandbox.invalid:8900/openai_compat"  # an env: URL: replaced
    assert deps["kling-v3-omni-cn"].credentials == {"access_key": SANDBOX_SECRET, "secret_key": SANDBOX_SECRET}


def test_catalog_refuses_two_sandboxes_and_bad_urls() -> None:
    with pytest.raises(ValueError, match="exclusive"):
        Catalog.load(env={}, sandbox=True, sandbox_url="http://127.0.0.1:8900")
    with pytest.raises(ValueError, match="http"):
        Catalog.load(env={}, sandbox_url="127.0.0.1:8900")
    assert Catalog.load(env={}, sandbox_url="").sandbox_url is None
