"""Submit exactly once: a task whose process died mid-submit (intent recorded, no handle) is reconciled.

In process (``tests/money_support.py``), its queue told to start nothing and its orphan sweep slowed
to a crawl, so the test decides what happened before the "crash": the task row is left running,
owned by a process that is gone, in stage ``submitting``; the Kling fake either did receive that
submit (the job exists under the task's reference) or did not. A restarted runner (``Runner.run``,
as the orphan sweep calls it) takes over.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import update
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imagegate.db.tables import Task
from imagegate.domain import ImageRequest
from imagegate.engine.runner import reference_of
from imagegate.testing.fakes.state import FakeState
from tests.money_support import InProcess, in_process

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

MODEL = "Kling:3.0-omni"
PRICE = 28_000  # micro-dollars per 1K image


@pytest.fixture()
async def gw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[InProcess]:
    async with in_process(tmp_path, sweep_interval=3600) as g:
        queue = g.gw.tasks.queue

        async def nothing(*_: object) -> bool:
            return False

        monkeypatch.setattr(queue, "reserve", nothing)  # no worker free: the task is queued...
        monkeypatch.setattr(queue, "enqueue", nothing)  # ...and nothing takes it off the queue
        yield g


async def interrupted_mid_submit(gw: InProcess, headers: dict[str, str]) -> Task:
    """An accepted async task, left as a process that died between the submit intent and its handle leaves it."""
    r = await gw.post("/v1/images/generations?async=true", headers, {"model": MODEL, "prompt": "a harbour", "n": 1})
    assert r.status_code == 202, r.text
    task = await gw.task(r.json()["id"])
    model = gw.gw.catalog.get(MODEL)
    assert model is not None
    dep = model.deployments[0]
    stmt = (
        update(Task)
        .where(Task.id == task.id)
        .values(status="running", owner="proc_gone", upstream={"stage": "submitting", "deployment": dep.id})
    )
    async with gw.gw.tasks.store.db.session.begin() as s:
        await s.execute(stmt)
    return await gw.task(task.id)


async def submit_before_the_crash(gw: InProcess, task: Task) -> dict[str, object]:
    """The submit the dead process sent: it reached Kling, under the task's reference."""
    model = gw.gw.catalog.get(MODEL)
    assert model is not None
    provider = gw.gw.tasks.runner.router.provider(model, model.deployments[0])
    return await provider.submit(ImageRequest(model=MODEL, prompt="a harbour"), reference_of(task))


def kling(gw: InProcess) -> FakeState:
    state = gw.fake("kling")
    state.polls_to_finish = 2
    return state


async def test_a_submit_that_reached_the_upstream_is_found_and_polled_not_sent_again(gw: InProcess) -> None:
    key_id, h = await gw.key(credits=1.0)
    task = await interrupted_mid_submit(gw, h)
    fake = kling(gw)
    handle = await submit_before_the_crash(gw, task)
    assert fake.calls["submit"] == 1

    await gw.gw.tasks.runner.run(task.id)

    done = await gw.task(task.id)
    assert done.status == "succeeded", (done.error_code, done.error_message)
    assert fake.calls["submit"] == 1  # found by its reference: no second submit
    assert done.upstream is not None and done.upstream["handle"]["task_id"] == handle["task_id"]
    assert done.cost_micros == PRICE and await gw.balance(key_id) == 1_000_000 - PRICE  # charged once


async def test_a_submit_that_never_arrived_is_sent_once(gw: InProcess) -> None:
    key_id, h = await gw.key(credits=1.0)
    task = await interrupted_mid_submit(gw, h)
    fake = kling(gw)

    await gw.gw.tasks.runner.run(task.id)

    done = await gw.task(task.id)
    assert done.status == "succeeded", (done.error_code, done.error_message)
    assert fake.calls["submit"] == 1 and fake.calls["list"] == 1  # looked up (to the end of the list), then sent
    job = next(iter(fake.jobs.values()))
    assert job["external"] == reference_of(task)
    assert await gw.balance(key_id) == 1_000_000 - PRICE


async def test_a_lookup_that_keeps_failing_ends_the_task_refunded(gw: InProcess) -> None:
    key_id, h = await gw.key(credits=1.0)
    task = await interrupted_mid_submit(gw, h)
    fake = kling(gw)
    fake.script.extend([_unavailable] * 10)  # every try of the router's retries

    await gw.gw.tasks.runner.run(task.id)

    done = await gw.task(task.id)
    assert done.status == "failed" and done.error_code == "interrupted"
    assert "asking it whether the job exists failed" in (done.error_message or "")
    assert fake.calls["submit"] == 0 and await gw.balance(key_id) == 1_000_000


def _unavailable(_request: Request) -> Response:
    return JSONResponse({"code": 5001, "message": "Server temporarily unavailable", "request_id": "r"}, 503)
