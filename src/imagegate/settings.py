"""Runtime settings: environment variables ``IMAGEGATE_*``, overridable by CLI flags."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    return Path(os.environ.get("IMAGEGATE_HOME") or "./.imagegate")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMAGEGATE_", extra="ignore")

    data_dir: Path = Field(default_factory=default_home)
    database_url: str | None = None  # default: SQLite under data_dir
    config: Path | None = None  # extra catalog YAML
    public_base_url: str | None = None  # default: the host the request came to
    url_ttl_seconds: int = 3600
    secret_key: str | None = None  # signs URLs; default: generated once into data_dir
    allow_private_networks: bool = False
    max_image_bytes: int = 25 * 1024 * 1024
    max_request_bytes: int = 120 * 1024 * 1024
    max_bytes_in_flight: int = 1024 * 1024 * 1024  # request bytes held by all unfinished requests together
    fetch_timeout: float = 20.0
    #: URL prefix -> replacement for fetched inputs (e.g. an internal mirror); JSON in the env var
    url_rewrites: dict[str, str] = Field(default_factory=dict)
    sandbox: bool = False
    sandbox_delay_ms: int | None = None
    #: a standalone sandbox upstream (``imagegate sandbox-server``): every deployment calls it over HTTP
    sandbox_url: str | None = None
    #: where images live: local disk under data_dir (default) or ``s3://BUCKET[/PREFIX]``
    storage_url: str | None = None
    s3_endpoint_url: str | None = None  # an S3-compatible server; AWS_ACCESS_KEY_ID etc. as botocore reads them
    s3_region: str | None = None
    #: the store as clients reach it: downloads then redirect to presigned links there; unset (the
    #: store is private), the API processes stream the bytes themselves
    s3_public_url: str | None = None
    #: input images are refused above this many pixels, read from the header before any decoding
    max_image_pixels: int = 40_000_000
    max_request_pixels: int = 100_000_000  # all input images of one request together
    max_json_depth: int = 32  # nesting of a JSON request body
    workers: int = 16  # tasks this process runs at once (0: an API process that only queues them)
    #: a process silent for this long is taken for dead: another one takes over its tasks
    stale_after: float = 30.0
    heartbeat_interval: float = 5.0
    sweep_interval: float = 10.0  # how often workers look for tasks and jobs of processes that stopped
    db_pool_size: int | None = None  # connections per process (default 8 on SQLite, 10 on PostgreSQL)
    migrate_on_start: bool = True  # cluster processes may leave it to ``imagegate migrate``
    sync_timeout: float = 300.0
    #: seconds of silence on a streamed answer before a keep-alive comment (proxies cut idle ones at 60-120 s)
    stream_keep_alive: float = Field(15.0, gt=0)
    webhook_timeout: float = 10.0
    webhook_retry_window: float = 1800.0  # keep re-sending for this long (seconds)
    webhook_backoff_scale: float = 1.0  # multiplies the retry gaps (1 s, 2 s, 4 s, ...); tests shrink it
    idempotency_ttl: float = 86400.0
    upload_ttl: float = 3600.0
    awaiting_upload_ttl: float = 3600.0
    #: retention, in seconds (None: keep): the sweeper removes older rows and files in bounded batches
    retain_outputs: float | None = None  # output images of finished tasks
    retain_inputs: float | None = 7 * 86400.0  # input images and uploads, once their task ended or expired
    retain_deliveries: float | None = 30 * 86400.0  # webhook deliveries and their attempts, once settled
    #: after a rotation the previous webhook secret also signs (a second signature) for this long
    webhook_secret_grace: float = 86400.0
    #: one access-log line per request on stderr: ``json`` (default), ``text`` or ``off``
    log_format: Literal["json", "text", "off"] = "json"
    #: when set, ``GET /metrics`` needs ``Authorization: Bearer <token>``; unset, it is open (bind or firewall it)
    metrics_token: str | None = None
    #: glibc only: bytes above which buffers come from mmap; 1048576 trades ~25% CPU for less RSS
    malloc_mmap_threshold: int | None = None

    def prepare(self) -> Settings:
        """Create the data dir and fill in derived defaults."""
        self.data_dir = self.data_dir.expanduser().resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'imagegate.db'}"
        if not self.database_url.startswith("sqlite") and not self.secret_key:
            raise ValueError(
                "IMAGEGATE_SECRET_KEY is required off SQLite: every process of a deployment must sign and check "
                "the same links, so the key cannot be generated per data dir"
            )
        if not self.secret_key:
            path = self.data_dir / "secret.key"
            if not path.exists():
                path.write_text(secrets.token_urlsafe(32))
                path.chmod(0o600)
            self.secret_key = path.read_text().strip()
        return self

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"
