"""Command line: serve, keys, models, generate.

The web stack (uvicorn, the app) and httpx are imported inside the commands that use them,
so ``imagegate keys ...`` starts without loading them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from imagegate.catalog import Catalog
from imagegate.db.database import Database, to_usd
from imagegate.db.keys import KeyStore
from imagegate.db.tables import ApiKey
from imagegate.memory import tune_malloc
from imagegate.providers.registry import resubmit_of
from imagegate.settings import Settings

T = TypeVar("T")

app = typer.Typer(help="imagegate: one API in front of every image-generation model.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
err = Console(stderr=True)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="State directory (default $IMAGEGATE_HOME or ./.imagegate)")
]
Config = Annotated[Path | None, typer.Option("--config", help="Extra catalog YAML")]
RPM = Annotated[int | None, typer.Option("--rpm", min=1, help="Requests per minute (default: unlimited)")]
MaxConcurrent = Annotated[
    int | None, typer.Option("--max-concurrent", min=1, help="Tasks queued or running at once (default: unlimited)")
]
TERMINAL = ("succeeded", "failed", "canceled")


def _settings(data_dir: Path | None, **kw: Any) -> Settings:
    extra = {k: v for k, v in kw.items() if v is not None}
    if data_dir is not None:
        extra["data_dir"] = data_dir
    return Settings(**extra).prepare()


async def _with_keys(settings: Settings, fn: Callable[[KeyStore], Awaitable[T]]) -> T:
    db = Database(settings.database_url or "")
    try:
        await db.migrate()
        return await fn(KeyStore(db))
    finally:
        await db.close()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind")] = 8000,
    data_dir: DataDir = None,
    config: Config = None,
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Serve every catalog model from its provider's fake")
    ] = False,
    workers: Annotated[
        int | None, typer.Option(help="Tasks run at once in this process; 0: API only (needs PostgreSQL)")
    ] = None,
    log_level: Annotated[str, typer.Option()] = "info",
) -> None:
    """Run the gateway (with its own workers unless --workers 0)."""
    import importlib.util

    import uvicorn

    from imagegate.app import create_app

    if config is not None and not config.exists():
        err.print(f"[red]config file {config} does not exist[/red]")
        raise typer.Exit(2)
    settings = _settings(data_dir, config=config, sandbox=sandbox or None, workers=workers)
    tune_malloc(settings.malloc_mmap_threshold)  # before any thread starts
    application = create_app(settings, role="api" if settings.workers <= 0 else "serve")
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level=log_level,
        loop=loop,
        http=http,
        access_log=log_level == "debug",
        timeout_keep_alive=30,
    )


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Bring the database schema up to date (ours and, on PostgreSQL, the job engine's), then exit."""

    async def go() -> None:
        db = Database(settings.database_url or "")
        try:
            await db.migrate()
        finally:
            await db.close()

    settings = _settings(data_dir)
    asyncio.run(go())
    print("the schema is up to date")


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Tasks run at once")] = 16,
    data_dir: DataDir = None,
    config: Config = None,
    sandbox: Annotated[bool, typer.Option("--sandbox", help="Call every provider's fake")] = False,
    log_level: Annotated[str, typer.Option()] = "info",
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve this worker's Prometheus metrics at http://HOST:PORT/metrics")
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Interface for --metrics-port")] = "127.0.0.1",
) -> None:
    """Run tasks, upstream polls, webhook deliveries and sweeps (no API). SIGTERM drains: running tasks
    get a grace period, then another worker takes them over. Needs PostgreSQL."""
    settings = _settings(data_dir, config=config, sandbox=sandbox or None, workers=concurrency)
    if not (settings.database_url or "").startswith(("postgres", "postgresql")):
        err.print("[red]the worker role needs PostgreSQL (IMAGEGATE_DATABASE_URL=postgresql://...)[/red]")
        raise typer.Exit(2)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tune_malloc(settings.malloc_mmap_threshold)
    asyncio.run(_work(settings, (metrics_host, metrics_port) if metrics_port else None))


async def _work(settings: Settings, metrics_at: tuple[str, int] | None = None) -> None:
    from imagegate.app import build_gateway, running

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    gw = build_gateway(settings, role="worker")
    stop_metrics = gw.metrics.serve_http(*metrics_at) if metrics_at else None
    try:
        async with running(gw):
            await stop.wait()
    finally:
        if stop_metrics is not None:
            stop_metrics()


@app.command("sandbox-server")
def sandbox_server(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind")] = 8900,
    delay_ms: Annotated[int | None, typer.Option(help="Simulated work per image")] = None,
    log_level: Annotated[str, typer.Option()] = "warning",
) -> None:
    """Serve every provider's fake over HTTP, one path prefix each; point IMAGEGATE_SANDBOX_URL at it."""
    from imagegate.testing.server import run_sandbox_server

    run_sandbox_server(host, port, delay_ms, log_level=log_level)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="A label for the key")],
    credits: Annotated[float | None, typer.Option("--credits", help="Balance in USD (default: unlimited)")] = None,
    rpm: RPM = None,
    max_concurrent: MaxConcurrent = None,
    admin: Annotated[bool, typer.Option("--admin", help="An admin key: it may call /admin/v1/")] = False,
    data_dir: DataDir = None,
) -> None:
    """Create a key; the secret is printed once, as the last line."""
    settings = _settings(data_dir)

    async def go(keys: KeyStore) -> tuple[ApiKey, str]:
        return await keys.create(name, credits, rate_limit_rpm=rpm, max_concurrent_tasks=max_concurrent, is_admin=admin)

    row, secret = asyncio.run(_with_keys(settings, go))
    bal = "unlimited" if credits is None else f"${credits:.2f}"
    kind = "admin key" if admin else "key"
    print(f"created {kind} {row.id} ({name}, credits {bal}); the secret is shown only once:")
    print(secret)


@keys_app.command("limit")
def keys_limit(
    key: Annotated[str, typer.Argument(help="Key id, name or prefix")],
    rpm: RPM = None,
    max_concurrent: MaxConcurrent = None,
    data_dir: DataDir = None,
) -> None:
    """Set a key's limits (an option left out lifts that limit)."""
    settings = _settings(data_dir)

    async def go(keys: KeyStore) -> str | None:
        row = await keys.find(key)
        if row is not None:
            await keys.set_limits(row.id, rate_limit_rpm=rpm, max_concurrent_tasks=max_concurrent)
        return row.id if row is not None else None

    if asyncio.run(_with_keys(settings, go)) is None:
        err.print(f"[red]no single key matches {key!r}[/red]")
        raise typer.Exit(1)
    print(f"{key}: {rpm or 'unlimited'} requests/min, {max_concurrent or 'unlimited'} tasks at once")


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List keys (never their secrets)."""
    settings = _settings(data_dir)
    rows = asyncio.run(_with_keys(settings, lambda keys: keys.all()))
    table = Table("id", "name", "prefix", "credits (USD)", "created", "revoked", "admin")
    for r in rows:
        bal = "unlimited" if r.credits_micros is None else f"{to_usd(r.credits_micros):.4f}"
        admin = "yes" if r.is_admin else ""
        table.add_row(r.id, r.name, r.prefix + "…", bal, str(r.created_at)[:19], str(r.revoked_at or "")[:19], admin)
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="Key id, name or prefix")], data_dir: DataDir = None) -> None:
    """Revoke a key: it gets 401 from then on."""
    settings = _settings(data_dir)

    async def go(keys: KeyStore) -> str | None:
        row = await keys.find(key)
        if row is None:
            return None
        return row.id if await keys.revoke(row.id) else ""

    out = asyncio.run(_with_keys(settings, go))
    if out is None:
        err.print(f"[red]no single key matches {key!r}[/red]")
        raise typer.Exit(1)
    print(f"revoked {out}" if out else f"{key} was already revoked")


@app.command()
def models(
    show_all: Annotated[bool, typer.Option("--all", help="Include models lacking credentials")] = False,
    sandbox: Annotated[bool, typer.Option("--sandbox")] = False,
    config: Config = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per model, for scripts")] = False,
) -> None:
    """List the catalog."""
    table = Table("model", "modes", "max n", "price", "providers", "ready")
    for m in Catalog.load(config, sandbox=sandbox, sandbox_url=os.environ.get("IMAGEGATE_SANDBOX_URL")).all():
        if not show_all and not m.ready:
            continue
        if as_json:
            print(
                json.dumps(
                    {
                        "id": m.id,
                        "capabilities": m.spec.capabilities,
                        "max_n": m.spec.max_n,
                        "pricing": m.spec.price.describe(),
                        "providers": sorted({d.provider for d in m.deployments}),
                        "resubmit": resubmit_of(m.deployments),
                        "ready": m.ready,
                        "not_ready_reason": m.not_ready_reason,
                    }
                )
            )
            continue
        p = m.spec.price
        price = f"${p.per_image:g}/image" if p.per_image is not None and not p.rules else "by size/quality"
        providers = ",".join(sorted({d.provider for d in m.deployments}))
        ready = "yes" if m.ready else f"no ({m.not_ready_reason})"
        table.add_row(m.id, ",".join(m.spec.capabilities), str(m.spec.max_n), price, providers, ready)
    if not as_json:
        Console().print(table)


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument()],
    model: Annotated[str, typer.Option("--model", "-m")] = "test/test",
    size: Annotated[str | None, typer.Option("--size")] = None,
    n: Annotated[int, typer.Option("--n")] = 1,
    output: Annotated[Path, typer.Option("-o", "--output", help="File; with n>1 a suffix -1, -2 ... is added")] = Path(
        "out.png"
    ),
    url: Annotated[
        str | None, typer.Option("--url", envvar="IMAGEGATE_URL", help="The server (default http://127.0.0.1:PORT)")
    ] = None,
    port: Annotated[int, typer.Option("--port", help="The local server's port, when --url is not given")] = 8000,
    key: Annotated[str | None, typer.Option("--key", envvar="IMAGEGATE_API_KEY")] = None,
    timeout: Annotated[float, typer.Option("--timeout")] = 600.0,
) -> None:
    """Generate through a running server, showing progress while the task runs."""
    import httpx

    if not key:
        err.print("[red]an API key is needed: --key or IMAGEGATE_API_KEY[/red]")
        raise typer.Exit(2)
    fmt = output.suffix.lstrip(".").lower().replace("jpg", "jpeg") or "png"
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "n": n,
        "response_format": "b64_json",
        "output_format": fmt if fmt in ("png", "jpeg", "webp") else "png",
    }
    if size:
        body["size"] = size
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    base = url or f"http://127.0.0.1:{port}"
    try:
        with (
            httpx.Client(base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=60) as client,
            Progress(*columns, console=err) as progress,
        ):
            task = _follow(client, progress, body, timeout)
    except httpx.TransportError as exc:
        err.print(f"[red]cannot reach {base} ({type(exc).__name__}): is `imagegate serve` running there?[/red]")
        raise typer.Exit(1) from None
    if task["status"] != "succeeded":
        err.print(f"[red]{task['status']}: {task.get('error')}[/red]")
        raise typer.Exit(1)
    _save(task, output)


def _follow(client: Any, progress: Progress, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Create the task async and poll it to its end, drawing its progress."""
    model = body["model"]
    bar = progress.add_task(f"{model}: queued", total=100)
    task = _json(client.post("/v1/images/generations", params={"async": "true"}, json=body), progress)
    deadline = time.monotonic() + timeout
    while task["status"] not in TERMINAL:
        if time.monotonic() > deadline:
            progress.stop()
            err.print(f"[red]gave up waiting after {timeout:g}s; task {task['id']} is still {task['status']}[/red]")
            raise typer.Exit(1)
        time.sleep(0.3)
        task = _json(client.get(f"/v1/images/generations/{task['id']}"), progress)
        _draw(progress, bar, model, task)
    progress.update(bar, completed=100, description=f"{model}: {task['status']}")
    return task


def _draw(progress: Progress, bar: TaskID, model: str, task: dict[str, Any]) -> None:
    desc = f"{model}: {task['status']}"
    if task.get("queue_position"):
        desc += f" (position {task['queue_position']})"
    done = task.get("progress") or (5 if task["status"] == "running" else 0)
    progress.update(bar, description=desc, completed=done)


def _save(task: dict[str, Any], output: Path) -> None:
    paths = []
    for i, item in enumerate(task["data"]):
        path = output if len(task["data"]) == 1 else output.with_name(f"{output.stem}-{i + 1}{output.suffix}")
        path.write_bytes(base64.b64decode(item["b64_json"]))
        paths.append(str(path))
    print(f"saved {', '.join(paths)} ({task.get('size')}, ${task.get('cost') or 0:g}, {task.get('latency')} ms)")


def _json(resp: Any, progress: Progress) -> dict[str, Any]:
    """The answer's JSON, or the error printed and exit 1."""
    if resp.status_code < 400:
        out: dict[str, Any] = resp.json()
        return out
    progress.stop()
    try:
        e = resp.json()["error"]
        err.print(f"[red]HTTP {resp.status_code}: {e.get('message')} (param: {e.get('param')})[/red]")
    except Exception:
        err.print(f"[red]HTTP {resp.status_code}: {resp.text[:300]}[/red]")
    raise typer.Exit(1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
