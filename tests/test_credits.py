"""Credits: reserved before the upstream call, settled after, refunded on failure; never negative under races."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest

from tests.conftest import TEST_CATALOG, ServerProc


async def _burst(url: str, key: str, count: int) -> list[int]:
    async with httpx.AsyncClient(timeout=60) as client:

        async def one() -> int:
            r = await client.post(
                url + "/v1/images/generations",
                headers={"authorization": f"Bearer {key}"},
                json={"model": "test/priced", "prompt": "race", "size": "64x64"},
            )
            return r.status_code

        return list(await asyncio.gather(*(one() for _ in range(count))))


def _balance(server: ServerProc, key_name: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "imagegate.cli", "keys", "list", "--data-dir", str(server.data_dir)],
        env={**server.env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if key_name in ln)
    return line.split("│")[4].strip()


def _race(server: ServerProc) -> None:
    key = server.create_key(credits=0.03, name="racer")
    codes = asyncio.run(_burst(server.url, key, 10))
    assert sorted(codes) == [200] * 3 + [402] * 7, codes
    assert _balance(server, "racer") == "0.0000"


def test_credit_race_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    srv = ServerProc(tmp_path / "gw", args=["--config", str(TEST_CATALOG)]).start()
    try:
        _race(srv)
    finally:
        srv.stop()


def test_credit_race_postgres(tmp_path, pg_database_url) -> None:  # type: ignore[no-untyped-def]
    srv = ServerProc(
        tmp_path / "gw",
        env={"IMAGEGATE_DATABASE_URL": pg_database_url, "IMAGEGATE_SECRET_KEY": "pg-test-secret"},
        args=["--config", str(TEST_CATALOG)],
    ).start()
    try:
        _race(srv)
        # and the rest of the pipeline works on PostgreSQL too
        key = srv.create_key()
        r = httpx.post(
            srv.url + "/v1/images/generations?async=true",
            headers={"authorization": f"Bearer {key}"},
            json={"model": "test/test", "prompt": "pg", "size": "64x64", "n": 2},
            timeout=30,
        )
        assert r.status_code in (200, 202)
        task_id = r.json()["id"]
        for _ in range(100):
            t = httpx.get(
                f"{srv.url}/v1/images/generations/{task_id}", headers={"authorization": f"Bearer {key}"}
            ).json()
            if t["status"] == "succeeded":
                break
            asyncio.run(asyncio.sleep(0.05))
        assert t["status"] == "succeeded" and len(t["data"]) == 2
    finally:
        srv.stop()


def test_cost_is_settled(server) -> None:  # type: ignore[no-untyped-def]
    """The catalog price times the images made is taken from the balance and reported."""
    key = server.create_key(credits=0.05, name="settle-me")
    r = httpx.post(
        server.url + "/v1/images/generations",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "test/priced", "prompt": "ok", "size": "64x64", "n": 2},
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["cost"] == pytest.approx(0.02)
    assert _balance(server, "settle-me") == "0.0300"
