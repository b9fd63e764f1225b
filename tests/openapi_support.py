"""Test parts for the OpenAPI tests: a client generated from the served document, and Schemathesis.

``openapi-python-client`` pins versions of ``typer`` and ``ruff`` that clash with this project's, so
it lives in a virtual environment of its own under pytest's cache folder, made on first use from
PyPI (or taken from ``PATH``). The generated client runs in that environment too: it needs only
``httpx`` and ``attrs``, which the generator brings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Sequence
from pathlib import Path

GENERATOR = "openapi-python-client==0.29.1"

#: generates images through the generated client; argv: client folder, base URL, key, output file
CLIENT_SCRIPT = """
import base64, sys
sys.path.insert(0, sys.argv[1])
from imagegate_client import AuthenticatedClient
from imagegate_client.api.open_ai_images import create_image
from imagegate_client.models import ImageGeneration, ImagesResponse, ResponseFormat

client = AuthenticatedClient(base_url=sys.argv[2], token=sys.argv[3], raise_on_unexpected_status=True)
body = ImageGeneration(model="test/test", prompt="a lighthouse", size="96x64", n=2,
                       response_format=ResponseFormat("b64_json"))
answer = create_image.sync_detailed(client=client, body=body)
assert answer.status_code == 200, answer.content
assert isinstance(answer.parsed, ImagesResponse), answer.parsed
assert answer.parsed.model == "test/test" and len(answer.parsed.data) == 2
with open(sys.argv[4], "wb") as out:
    out.write(base64.b64decode(answer.parsed.data[0].b64_json))
"""


def generator(cache: Path) -> tuple[Path, Path]:
    """(the generator's executable, the Python of its environment)."""
    found = shutil.which("openapi-python-client")
    if found:
        return Path(found), Path(sys.executable)
    env = cache / GENERATOR.replace("==", "-")
    exe, python = env / "bin" / "openapi-python-client", env / "bin" / "python"
    if not exe.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(env)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", GENERATOR],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return exe, python


def generate_client(exe: Path, document: Path, out: Path) -> Path:
    folder = out / "imagegate_client"
    done = subprocess.run(
        [str(exe), "generate", "--path", str(document), "--meta", "none", "--output-path", str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=out,
    )
    assert done.returncode == 0 and (folder / "client.py").exists(), done.stdout + done.stderr
    return folder


def schemathesis(
    url: str, key: str, report: Path, *, max_examples: int, seed: int, extra: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """Schemathesis' CLI against ``url`` (its Hypothesis runs without a deadline per case).

    One worker: with two, Hypothesis describes strategies from two threads at once and Python
    3.11's ``ast`` sometimes fails that ("AST constructor recursion depth mismatch"), a tool error
    that would fail the run; one worker costs a few seconds on two cores."""
    cli = Path(sys.executable).with_name("schemathesis")
    cmd = [
        str(cli),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--header",
        f"Authorization: Bearer {key}",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
        *extra,
    ]
    env = {**os.environ, "NO_COLOR": "1"}
    # its caches (.schemathesis/, .hypothesis/) go beside the report, not into the work tree
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=report.parent)
