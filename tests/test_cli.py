"""The command line: keys, models, generate against a running server."""

from __future__ import annotations

import subprocess
import sys

from PIL import Image

from tests.profiles import CLUSTER


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagegate.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_generate_saves_images(server, api_key, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "fox.webp"
    r = cli(
        "generate",
        "a red fox",
        "--model",
        "test/test",
        "--size",
        "300x200",
        "--n",
        "2",
        "-o",
        str(out),
        "--url",
        server.url,
        "--key",
        api_key,
        env=server.env,
    )
    assert r.returncode == 0, r.stderr
    for i in (1, 2):
        img = Image.open(tmp_path / f"fox-{i}.webp")
        assert img.format == "WEBP" and img.size == (300, 200)
    assert "saved" in r.stdout


def test_generate_reports_errors(server, api_key, tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = cli(
        "generate",
        "x",
        "--model",
        "test/test",
        "--size",
        "nonsense",
        "-o",
        str(tmp_path / "x.png"),
        "--url",
        server.url,
        "--key",
        api_key,
        env=server.env,
    )
    assert r.returncode == 1 and "size" in r.stderr
    r = cli("generate", "x", "--url", server.url, "--key", "", env={**server.env, "IMAGEGATE_API_KEY": ""})
    assert r.returncode == 2


def test_keys_list_hides_secrets_and_models_lists(server) -> None:  # type: ignore[no-untyped-def]
    secret = server.create_key(name="listed", credits=2.5)
    r = cli("keys", "list", "--data-dir", str(server.data_dir), env={**server.env, "COLUMNS": "200"})
    assert r.returncode == 0 and "listed" in r.stdout and "2.5000" in r.stdout
    assert secret not in r.stdout and secret[12:] not in r.stdout
    r = cli("models", "--all", env={**server.env, "COLUMNS": "200"})
    assert r.returncode == 0 and "test/test" in r.stdout and "dall-e-3" in r.stdout and "OPENAI_API_KEY" in r.stdout


def test_plaintext_key_never_stored(server) -> None:  # type: ignore[no-untyped-def]
    secret = server.create_key(name="hashed")
    if CLUSTER:  # every column of every key row, as PostgreSQL holds it
        db = repr(server.query("SELECT * FROM api_keys")).encode()
        assert b"hashed" in db
    else:
        db = (server.data_dir / "imagegate.db").read_bytes()
        for wal in server.data_dir.glob("imagegate.db-wal"):
            db += wal.read_bytes()
    assert secret.encode() not in db
    logs = b"".join(p.read_bytes() for p in server.data_dir.glob("*.log"))
    assert secret.encode() not in logs


def test_generate_takes_a_port_and_says_when_nothing_listens(server, api_key, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "p.png"
    env = {k: v for k, v in server.env.items() if k != "IMAGEGATE_URL"}
    r = cli("generate", "x", "-o", str(out), "--port", str(server.port), "--key", api_key, env=env)
    assert r.returncode == 0 and out.exists(), r.stderr
    from tests.conftest import free_port

    r = cli("generate", "x", "-o", str(out), "--port", str(free_port()), "--key", api_key, env=env)
    assert r.returncode == 1 and "cannot reach" in r.stderr and "Traceback" not in r.stderr


def test_models_json_is_one_object_per_line(server) -> None:  # type: ignore[no-untyped-def]
    import json

    r = cli("models", "--json", "--all", env=server.env)
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.returncode == 0 and any(m["id"] == "test/test" and m["ready"] for m in rows)
    by_id = {m["id"]: m for m in rows}  # what a crash mid-call does, derived from each adapter
    assert by_id["Kling:3.0-omni"]["resubmit"] == {"kling": "lookup"}
    assert by_id["test/test"]["resubmit"] == {"builtin": "replay"}
    assert all(v == "none" for v in by_id["flux-2-pro"]["resubmit"].values())
