"""Webhook secret rotation and delivery failure, as a receiver sees them.

After a rotation every delivery carries two Standard Webhooks signatures, by the new secret and by
the one it replaced, until ``IMAGEGATE_WEBHOOK_SECRET_GRACE`` has passed: a receiver still holding
only the old secret keeps verifying, then only the new one does. An endpoint that fails for the
whole retry window is marked failed, and its deliveries say so. Receivers verify with the
``standardwebhooks`` reference library, never with our own signing code.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from imagegate.db.migrate import alembic_config
from imagegate.db.tables import utcnow
from imagegate.webhooks import signing
from tests.async_support import Receiver
from tests.money_support import InProcess, in_process, wait_for
from tests.webhook_support import age_rotation

FAST = {"webhook_backoff_scale": 0.02, "webhook_timeout": 1.0}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture()
async def gw(tmp_path: Path):  # type: ignore[no-untyped-def]
    async with in_process(tmp_path, **FAST) as g:
        yield g


async def deliver(gw: InProcess, h: dict[str, str], receiver: Receiver, mode: str = "ok") -> dict[str, Any]:
    """A finished task's webhook as the receiver got it (its first attempt)."""
    body = {"model": "test/test", "prompt": "hook", "size": "64x64", "callback_url": f"{receiver.url}/{mode}"}
    r = await gw.post("/v1/images/generations?async=true", h, body)
    assert r.status_code == 202, r.text
    task_id = r.json()["id"]
    hits: list[dict[str, Any]] = await wait_for(lambda: receiver.for_task(task_id), what="the webhook")
    return hits[0]


def verifies(secret: str, hit: dict[str, Any]) -> bool:
    try:
        Webhook(secret).verify(hit["body"], hit["headers"])
    except WebhookVerificationError:
        return False
    return True


async def secrets(gw: InProcess, h: dict[str, str]) -> tuple[str, str]:
    """(the key's secret before, after) one rotation through the API."""
    old = (await gw.http.get("/v1/webhooks/secret", headers=h)).json()["key"]
    r = await gw.http.post("/v1/webhooks/secret/rotate", headers=h)
    assert r.status_code == 200, r.text
    new = r.json()["key"]
    assert new != old and (await gw.http.get("/v1/webhooks/secret", headers=h)).json()["key"] == new
    return old, new


async def test_the_old_secret_verifies_during_the_grace_period_and_not_after(gw: InProcess, receiver: Receiver) -> None:
    key_id, h = await gw.key(credits=None)
    old, new = await secrets(gw, h)
    during = await deliver(gw, h, receiver)
    assert len(during["headers"]["webhook-signature"].split()) == 2
    assert verifies(old, during) and verifies(new, during)  # either receiver accepts it
    grace = gw.gw.settings.webhook_secret_grace
    await age_rotation(gw.gw.db, key_id, grace - 60)  # a minute before the grace period ends
    assert verifies(old, await deliver(gw, h, receiver))
    await age_rotation(gw.gw.db, key_id, grace + 1)
    after = await deliver(gw, h, receiver)
    assert verifies(new, after) and not verifies(old, after)
    assert len(after["headers"]["webhook-signature"].split()) == 1


async def test_a_key_never_rotated_signs_once_and_a_second_rotation_drops_the_oldest(
    gw: InProcess, receiver: Receiver
) -> None:
    _, h = await gw.key(credits=None)
    first = (await gw.http.get("/v1/webhooks/secret", headers=h)).json()["key"]
    plain = await deliver(gw, h, receiver)
    assert verifies(first, plain) and len(plain["headers"]["webhook-signature"].split()) == 1
    _, second = await secrets(gw, h)
    _, third = await secrets(gw, h)
    hit = await deliver(gw, h, receiver)
    assert verifies(third, hit) and verifies(second, hit) and not verifies(first, hit)


async def test_another_keys_secret_never_verifies(gw: InProcess, receiver: Receiver) -> None:
    _, h = await gw.key(credits=None, name="a")
    _, other = await gw.key(credits=None, name="b")
    theirs = (await gw.http.get("/v1/webhooks/secret", headers=other)).json()["key"]
    await secrets(gw, other)  # the other key's rotation must not leak into this key's signatures
    hit = await deliver(gw, h, receiver)
    assert not verifies(theirs, hit)


def test_signing_secrets_follow_the_grace_period() -> None:
    now = utcnow()
    at = now - timedelta(seconds=100)
    assert signing.signing_secrets("new", "old", at, 101, now) == ["new", "old"]
    assert signing.signing_secrets("new", "old", at, 100, now) == ["new"]  # the grace period is over
    assert signing.signing_secrets("new", None, at, 1000, now) == ["new"]
    assert signing.signing_secrets("new", "old", None, 1000, now) == ["new"]
    assert signing.signing_secrets("same", "same", at, 1000, now) == ["same"]


def test_two_signatures_each_verify_with_the_reference_library() -> None:
    a, b = "whsec_" + "A" * 43 + "=", "whsec_" + "B" * 43 + "="
    body = b'{"id":"img_1","status":"succeeded"}'
    headers = signing.headers([a, b], "msg_1", body)
    assert Webhook(a).verify(body, headers)["id"] == "img_1"
    assert Webhook(b).verify(body, headers)["id"] == "img_1"
    with pytest.raises(WebhookVerificationError):
        Webhook(a).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "C" * 43 + "=").verify(body, headers)
    stale = signing.headers(a, "msg_1", body, timestamp=int(time.time()) - 3600)
    with pytest.raises(WebhookVerificationError):
        Webhook(a).verify(body, stale)
    with pytest.raises(ValueError):
        signing.headers([], "msg_1", body)


# -- an endpoint that keeps failing ---------------------------------------------------------------


async def test_an_endpoint_failing_for_the_whole_window_is_marked_failed(tmp_path: Path, receiver: Receiver) -> None:
    window = 1.0
    receiver.down = True
    async with in_process(tmp_path, webhook_retry_window=window, **FAST) as gw:
        _, h = await gw.key(credits=None)
        hit = await deliver(gw, h, receiver, mode="down")
        task_id = str(json.loads(hit["body"])["id"])

        async def settled() -> dict[str, Any] | None:
            r = await gw.http.get(f"/v1/tasks/{task_id}/deliveries", headers=h)
            assert r.status_code == 200, r.text
            data = r.json()["data"]
            return data[0] if data and data[0]["status"] != "pending" else None

        d = await wait_for(settled, timeout=15, what="the delivery to settle")
        assert d["status"] == "failed" and d["delivered_at"] is None and d["next_attempt_at"] is None
        assert d["attempt_count"] == len(d["attempts"]) >= 3
        assert all(a["status_code"] == 503 and a["error"] == "HTTP 503" for a in d["attempts"])
        assert d["attempts"][-1]["at"] - d["created_at"] >= window  # it kept trying for the whole window
        assert d["attempts"][-2]["at"] - d["created_at"] < window  # and gave up at the first failure past it
        sent = len(receiver.for_task(task_id))
        assert sent == d["attempt_count"]
        await asyncio.sleep(0.3)
        assert len(receiver.for_task(task_id)) == sent  # a failed delivery is not sent again


async def test_the_last_retry_falls_at_the_windows_end(tmp_path: Path, receiver: Receiver) -> None:
    # gaps of 2, 4, ... seconds: the third attempt would come after the 4-second window closed (a wide
    # window, so a first attempt that is late on a busy machine still leaves the second inside it)
    window = 4.0
    receiver.down = True
    async with in_process(tmp_path, webhook_retry_window=window, webhook_backoff_scale=2.0, webhook_timeout=1.0) as gw:
        _, h = await gw.key(credits=None)
        hit = await deliver(gw, h, receiver, mode="down")
        task_id = str(json.loads(hit["body"])["id"])

        async def settled() -> dict[str, Any] | None:
            r = await gw.http.get(f"/v1/tasks/{task_id}/deliveries", headers=h)
            data = r.json()["data"]
            return data[0] if data and data[0]["status"] != "pending" else None

        d = await wait_for(settled, timeout=30, what="the delivery to settle")
        assert d["status"] == "failed" and d["attempt_count"] == 3, d
        at = [a["at"] - d["created_at"] for a in d["attempts"]]
        # uncapped, the third attempt would wait 4 s after the second; capped, it is sent when the
        # window ends
        assert at[1] < window <= at[2] < at[1] + 4.0, at


# -- the migration ----------------------------------------------------------------------------------


async def test_migration_0003_keeps_keys_and_adds_the_rotation_columns(tmp_path: Path) -> None:
    from alembic import command

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")

    async def alembic(action: Any, revision: str) -> None:
        def run(conn: Any) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            action(cfg, revision)

        async with engine.begin() as conn:
            await conn.run_sync(run)

    async def columns() -> set[str]:
        async with engine.connect() as conn:
            return {r[1] for r in (await conn.execute(text("PRAGMA table_info(api_keys)"))).all()}

    try:
        await alembic(command.upgrade, "0002")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO api_keys (id, name, prefix, key_hash, webhook_secret, created_at) "
                    "VALUES ('key_1', 'k', 'ig-x', 'h', 'whsec_x', '2026-01-01 00:00:00')"
                )
            )
        await alembic(command.upgrade, "head")
        assert {"previous_webhook_secret", "webhook_secret_rotated_at"} <= await columns()
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT webhook_secret, previous_webhook_secret FROM api_keys"))).one()
        assert tuple(row) == ("whsec_x", None)
        await alembic(command.downgrade, "0002")
        assert "previous_webhook_secret" not in await columns()
    finally:
        await engine.dispose()
