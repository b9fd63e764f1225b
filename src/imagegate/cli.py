"""Command line: serve, keys, models, generate."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="imagegate: one API in front of every image-generation model.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
err = Console(stderr=True)

DataDir = typer.Option(None, "--data-dir", help="State directory (default $IMAGEGATE_HOME or ./.imagegate)")


def _settings(data_dir: Optional[Path], **kw: Any):  # type: ignore[no-untyped-def]
    from imagegate.settings import Settings

    extra = {k: v for k, v in kw.items() if v is not None}
    if data_dir is not None:
        extra["data_dir"] = data_dir
    return Settings(**extra).prepare()


async def _with_db(settings, fn):  # type: ignore[no-untyped-def]
    from imagegate.db.repo import Database

    db = Database(settings.database_url)
    try:
        await db.migrate()
        return await fn(db)
    finally:
        await db.close()


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind"),
    port: int = typer.Option(8000, help="Port to bind"),
    data_dir: Optional[Path] = DataDir,
    config: Optional[Path] = typer.Option(None, "--config", help="Extra catalog YAML"),
    sandbox: bool = typer.Option(False, "--sandbox", help="Serve every catalog model from its provider's fake"),
    workers: Optional[int] = typer.Option(None, help="Concurrent async tasks"),
    log_level: str = typer.Option("info"),
) -> None:
    """Run the gateway."""
    import uvicorn

    from imagegate.app import create_app

    if config is not None and not config.exists():
        err.print(f"[red]config file {config} does not exist[/red]")
        raise typer.Exit(2)
    from imagegate.memory import tune_malloc

    settings = _settings(data_dir, config=config, sandbox=sandbox or None, workers=workers)
    tune_malloc(settings.malloc_mmap_threshold)  # before any thread starts
    application = create_app(settings)
    loop = "uvloop" if _has("uvloop") else "asyncio"
    http = "httptools" if _has("httptools") else "h11"
    uvicorn.run(application, host=host, port=port, log_level=log_level, loop=loop, http=http,
                access_log=log_level == "debug", timeout_keep_alive=30)


def _has(mod: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(mod) is not None


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., "--name", help="A label for the key"),
    credits: Optional[float] = typer.Option(None, "--credits", help="Balance in USD (default: unlimited)"),
    data_dir: Optional[Path] = DataDir,
) -> None:
    """Create a key; the secret is printed once, as the last line."""
    settings = _settings(data_dir)

    async def go(db):  # type: ignore[no-untyped-def]
        return await db.create_key(name, credits)

    row, secret = asyncio.run(_with_db(settings, go))
    bal = "unlimited" if credits is None else f"${credits:.2f}"
    print(f"created key {row.id} ({name}, credits {bal}); the secret is shown only once:")
    print(secret)


@keys_app.command("list")
def keys_list(data_dir: Optional[Path] = DataDir) -> None:
    """List keys (never their secrets)."""
    from imagegate.db.repo import to_usd

    settings = _settings(data_dir)
    rows = asyncio.run(_with_db(settings, lambda db: db.list_keys()))
    table = Table("id", "name", "prefix", "credits (USD)", "created", "revoked")
    for r in rows:
        bal = "unlimited" if r.credits_micros is None else f"{to_usd(r.credits_micros):.4f}"
        table.add_row(r.id, r.name, r.prefix + "…", bal, str(r.created_at)[:19], str(r.revoked_at or "")[:19])
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(key: str = typer.Argument(..., help="Key id, name or prefix"), data_dir: Optional[Path] = DataDir) -> None:
    """Revoke a key: it gets 401 from then on."""
    settings = _settings(data_dir)

    async def go(db):  # type: ignore[no-untyped-def]
        row = await db.find_key(key)
        if row is None:
            return None
        return row.id if await db.revoke_key(row.id) else ""

    out = asyncio.run(_with_db(settings, go))
    if out is None:
        err.print(f"[red]no single key matches {key!r}[/red]")
        raise typer.Exit(1)
    print(f"revoked {out}" if out else f"{key} was already revoked")


@app.command()
def models(
    all: bool = typer.Option(False, "--all", help="Include models lacking credentials"),
    sandbox: bool = typer.Option(False, "--sandbox"),
    config: Optional[Path] = typer.Option(None, "--config"),
) -> None:
    """List the catalog."""
    from imagegate.catalog import Catalog

    cat = Catalog.load(config, sandbox=sandbox)
    table = Table("model", "modes", "max n", "price", "providers", "ready")
    for m in cat.all():
        if not all and not m.ready:
            continue
        p = m.spec.price
        price = f"${p.per_image:g}/image" if p.per_image is not None and not p.rules else "by size/quality"
        table.add_row(m.id, ",".join(m.spec.capabilities), str(m.spec.max_n), price,
                      ",".join(sorted({d.provider for d in m.deployments})),
                      "yes" if m.ready else f"no ({m.not_ready_reason})")
    Console().print(table)


@app.command()
def generate(
    prompt: str = typer.Argument(...),
    model: str = typer.Option("test/test", "--model", "-m"),
    size: Optional[str] = typer.Option(None, "--size"),
    n: int = typer.Option(1, "--n"),
    output: Path = typer.Option(Path("out.png"), "-o", "--output", help="File; with n>1 a suffix -1, -2 ... is added"),
    url: str = typer.Option(os.environ.get("IMAGEGATE_URL", "http://127.0.0.1:8000"), "--url", envvar="IMAGEGATE_URL"),
    key: Optional[str] = typer.Option(None, "--key", envvar="IMAGEGATE_API_KEY"),
    timeout: float = typer.Option(600.0, "--timeout"),
) -> None:
    """Generate through a running server, showing progress while the task runs."""
    import httpx
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if not key:
        err.print("[red]an API key is needed: --key or IMAGEGATE_API_KEY[/red]")
        raise typer.Exit(2)
    fmt = output.suffix.lstrip(".").lower().replace("jpg", "jpeg") or "png"
    body: dict[str, Any] = {"model": model, "prompt": prompt, "n": n, "response_format": "b64_json",
                            "output_format": fmt if fmt in ("png", "jpeg", "webp") else "png"}
    if size:
        body["size"] = size
    headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client, Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=err,
    ) as progress:
        bar = progress.add_task(f"{model}: queued", total=100)
        resp = client.post("/v1/images/generations", params={"async": "true"}, json=body)
        if resp.status_code >= 400:
            progress.stop()
            _fail(resp)
        task = resp.json()
        deadline = time.monotonic() + timeout
        while task["status"] not in ("succeeded", "failed", "canceled"):
            if time.monotonic() > deadline:
                progress.stop()
                err.print(f"[red]gave up waiting after {timeout:g}s; task {task['id']} is still {task['status']}[/red]")
                raise typer.Exit(1)
            time.sleep(0.3)
            resp = client.get(f"/v1/images/generations/{task['id']}")
            if resp.status_code >= 400:
                progress.stop()
                _fail(resp)
            task = resp.json()
            desc = f"{model}: {task['status']}"
            if task.get("queue_position"):
                desc += f" (position {task['queue_position']})"
            progress.update(bar, description=desc, completed=task.get("progress") or (5 if task["status"] == "running" else 0))
        progress.update(bar, completed=100, description=f"{model}: {task['status']}")
    if task["status"] != "succeeded":
        err.print(f"[red]{task['status']}: {task.get('error')}[/red]")
        raise typer.Exit(1)
    paths = []
    for i, item in enumerate(task["data"]):
        path = output if len(task["data"]) == 1 else output.with_name(f"{output.stem}-{i + 1}{output.suffix}")
        path.write_bytes(base64.b64decode(item["b64_json"]))
        paths.append(str(path))
    print(f"saved {', '.join(paths)} ({task.get('size')}, ${task.get('cost') or 0:g}, {task.get('latency')} ms)")


def _fail(resp: Any) -> None:
    try:
        e = resp.json()["error"]
        err.print(f"[red]HTTP {resp.status_code}: {e.get('message')} (param: {e.get('param')})[/red]")
    except Exception:
        err.print(f"[red]HTTP {resp.status_code}: {resp.text[:300]}[/red]")
    raise typer.Exit(1)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
