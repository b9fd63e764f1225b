"""LiteLLM's proxy in its own virtual environment under bench/.venvs/ (installed from PyPI once).

The version is pinned so that tables from different runs compare; bump ``VERSION`` on purpose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import RESULTS, VENVS

VERSION = "1.106.2"
VENV = VENVS / "litellm"
BIN = VENV / "bin"


def installed_version() -> str | None:
    py = BIN / "python"
    if not py.exists():
        return None
    out = subprocess.run(
        [str(py), "-c", "from importlib.metadata import version; print(version('litellm'))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip() or None if out.returncode == 0 else None


def ensure(timeout: float = 900.0) -> tuple[str | None, str]:
    """(version, note): install ``litellm[proxy]==VERSION`` if needed; version None when impossible."""
    have = installed_version()
    if have == VERSION and (BIN / "litellm").exists():
        return have, "ok"
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = RESULTS / "litellm-install.log"
    try:
        with open(log, "wb") as f:
            if not (BIN / "python").exists():
                subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, stdout=f, stderr=f, timeout=120)
            subprocess.run(
                [str(BIN / "pip"), "install", "-q", f"litellm[proxy]=={VERSION}"],
                check=True,
                stdout=f,
                stderr=f,
                timeout=timeout,
            )
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"LiteLLM {VERSION} could not be installed ({type(exc).__name__}; see {log})"
    have = installed_version()
    return (have, "ok") if have else (None, f"LiteLLM installed but not importable; see {log}")


def config(path: Path, upstream_v1: str, models: list[str], master_key: str) -> Path:
    """A proxy config routing each bench model name to the fake upstream through LiteLLM's OpenAI path."""
    cfg: dict[str, Any] = {
        "model_list": [
            {
                "model_name": m,
                "litellm_params": {"model": "openai/dall-e-2", "api_base": upstream_v1, "api_key": "sk-upstream"},
            }
            for m in models
        ],
        # dall-e-2: LiteLLM forwards response_format for it (for gpt-image-1 it drops the
        # parameter, so url would silently become b64_json); the fake ignores the model name.
        "litellm_settings": {"telemetry": False},
        "general_settings": {"master_key": master_key},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg, indent=2))  # JSON is YAML
    return path


def command(cfg: Path, port: int) -> list[str]:
    return [
        str(BIN / "litellm"),
        "--config",
        str(cfg),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]


def env() -> dict[str, str]:
    return {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
        "NO_DOCS": "True",
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(VENV),
    }
