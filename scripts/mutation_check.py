"""Break the money and security paths one at a time and fail unless a test notices each break.

A test suite can pass while guarding nothing: a refund deleted from the failure path once went
unnoticed by every test. This script keeps that from coming back. Each mutant below is one small
patch to a scratch copy of ``src/imagegate`` (never the working tree): a refund left out, a link
that never expires, a signature scheme gone wrong, a private address let through, a revoked key
let in. For each, the few tests that must catch it run against the copy (``PYTHONPATH`` puts it
ahead of the installed package); the check fails if any mutant survives, if a patch no longer
applies (the code moved: update the mutant), or if the unbroken copy does not pass those tests.

    python scripts/mutation_check.py            # every mutant, two at a time
    python scripts/mutation_check.py --list     # what is checked
    python scripts/mutation_check.py --only cancel-no-refund --jobs 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "imagegate"
TIMEOUT = 240  # seconds for one pytest run; a mutant that hangs its tests counts as caught, and says so

MONEY = "tests/test_money_paths.py::"
HOOKS = "tests/test_webhook_rotation.py::"
SSRF = "tests/test_hardening.py::"


@dataclass(frozen=True)
class Mutant:
    """Replace ``old`` (which must occur once after ``anchor``) with ``new`` in ``path`` (under src/imagegate)."""

    id: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    anchor: str = ""


MUTANTS = [
    Mutant(
        "fail-no-refund",
        "db/tasks.py",
        "            await refund(s, task.key_id, task.reserved_micros)\n",
        "",
        (
            MONEY + "test_failed_sync_generation_is_refunded_to_the_micro",
            MONEY + "test_failed_async_generation_is_refunded",
        ),
        anchor="    async def fail(",
    ),
    Mutant(
        "cancel-no-refund",
        "db/tasks.py",
        "            await refund(s, task.key_id, task.reserved_micros)\n",
        "",
        (MONEY + "test_cancel_refunds_the_reservation", MONEY + "test_cancel_of_a_queued_task_refunds_it"),
        anchor="    async def cancel(",
    ),
    Mutant(
        "cancel-keeps-running",
        "engine/tasks.py",
        "        await self.queue.abort(task)\n",
        "",
        (MONEY + "test_cancel_stops_a_run_whose_upstream_has_no_cancel",),
    ),
    Mutant(
        "charge-as-asked",
        "engine/runner.py",
        "delivered = len(stored.entries)",
        "delivered = req.n",
        (MONEY + "test_fewer_images_than_asked_are_charged_as_delivered",),
    ),
    Mutant(
        "success-keeps-the-reservation",
        "db/tasks.py",
        '            await refund(s, task.key_id, task.reserved_micros - int(values.get("cost_micros", 0)))\n',
        "",
        (MONEY + "test_fewer_images_than_asked_are_charged_as_delivered",),
        anchor="    async def succeed(",
    ),
    Mutant(
        "reserve-overdraws",
        "db/keys.py",
        "(ApiKey.credits_micros >= micros)",
        "(ApiKey.credits_micros >= 0)",
        (MONEY + "test_credits_are_never_overdrawn",),
    ),
    Mutant(
        "link-never-expires",
        "storage/signing.py",
        "return self.matches(name, expires, sig) and int(expires or 0) >= time.time()",
        "return self.matches(name, expires, sig)",
        (
            MONEY + "test_a_link_past_its_expiry_is_refused_though_its_signature_is_good",
            MONEY + "test_url_signer_refuses_expired_and_foreign_signatures",
        ),
    ),
    Mutant(
        "link-any-signature",
        "storage/signing.py",
        "return hmac.compare_digest(self.mac(name, int(expires)).encode(), sig.encode())",
        "return True",
        (MONEY + "test_url_signer_refuses_expired_and_foreign_signatures",),
    ),
    Mutant(
        "link-namespaces-shared",
        "storage/signing.py",
        'hashlib.sha256(f"{namespace}:{secret}".encode())',
        "hashlib.sha256(secret.encode())",
        (MONEY + "test_url_signer_refuses_expired_and_foreign_signatures",),
    ),
    Mutant(
        "webhook-signs-other-bytes",
        "webhooks/signing.py",
        'f"{msg_id}.{timestamp}.".encode()',
        'f"{msg_id}.{timestamp}".encode()',
        (HOOKS + "test_two_signatures_each_verify_with_the_reference_library",),
    ),
    Mutant(
        "webhook-one-signature",
        "webhooks/signing.py",
        'signature = " ".join(sign(s, msg_id, ts, body) for s in secrets)',
        "signature = sign(secrets[0], msg_id, ts, body)",
        (HOOKS + "test_two_signatures_each_verify_with_the_reference_library",),
    ),
    Mutant(
        "webhook-grace-never-ends",
        "webhooks/signing.py",
        "now < rotated_at + timedelta(seconds=grace)",
        "now > rotated_at",
        (HOOKS + "test_the_old_secret_verifies_during_the_grace_period_and_not_after",),
    ),
    Mutant(
        "rotation-forgets-the-old-secret",
        "db/keys.py",
        "previous_webhook_secret=ApiKey.webhook_secret",
        "previous_webhook_secret=None",
        (HOOKS + "test_the_old_secret_verifies_during_the_grace_period_and_not_after",),
    ),
    Mutant(
        "ssrf-one-good-address-suffices",
        "media/network.py",
        "any(blocked(ip) for ip in addresses)",
        "all(blocked(ip) for ip in addresses)",
        (SSRF + "test_names_refused_by_what_they_resolve_to",),
    ),
    Mutant(
        "ssrf-private-always-allowed",
        "media/network.py",
        "    if policy.allow_private:\n",
        "    if True:\n",
        (SSRF + "test_literal_urls_refused",),
    ),
    Mutant(
        "ssrf-wrapped-v4-ignored",
        "media/network.py",
        "out = [v4 for v4 in (ip.ipv4_mapped, ip.sixtofour) if v4 is not None]",
        "out: list[ipaddress.IPv4Address] = []",
        (SSRF + "test_address_refused",),
    ),
    Mutant(
        "revoked-key-accepted",
        "api/deps.py",
        "if key is None or key.revoked_at is not None:",
        "if key is None:",
        (MONEY + "test_requests_without_a_valid_live_key_are_401",),
    ),
]


@dataclass
class Outcome:
    mutant: str
    verdict: str  # caught / SURVIVED / ERROR
    detail: str
    seconds: float


def scratch_copy(dest: Path) -> Path:
    """``src/imagegate`` copied to ``dest/imagegate`` (what ``PYTHONPATH=dest`` imports)."""
    shutil.copytree(SRC, dest / "imagegate", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def apply(m: Mutant, root: Path) -> str | None:
    """Patch the copy; the reason it could not be patched, or None."""
    target = root / "imagegate" / m.path
    text = target.read_text(encoding="utf-8")
    start = text.find(m.anchor) if m.anchor else 0
    if start < 0:
        return f"anchor {m.anchor!r} not found in {m.path}"
    at = text.find(m.old, start)
    if at < 0:
        return f"{m.old.strip()!r} not found in {m.path}" + (f" after {m.anchor.strip()!r}" if m.anchor else "")
    if not m.anchor and text.count(m.old) != 1:
        return f"{m.old.strip()!r} occurs {text.count(m.old)} times in {m.path}: give the mutant an anchor"
    patched = text[:at] + m.new + text[at + len(m.old) :]
    try:
        compile(patched, str(target), "exec")
    except SyntaxError as exc:
        return f"the patched {m.path} does not compile: {exc}"
    target.write_text(patched, encoding="utf-8")
    return None


def pytest(root: Path, tests: Sequence[str]) -> tuple[int, str]:
    """Run ``tests`` with the copy at ``root`` ahead of the installed package: (exit code, output tail)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # the installed plugins cost seconds per run; these tests need one
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "pytest_asyncio.plugin", *tests]
    try:
        run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {TIMEOUT}s"
    return run.returncode, (run.stdout + run.stderr)[-1500:]


def check(m: Mutant, work: Path) -> Outcome:
    started = time.monotonic()
    root = scratch_copy(work / m.id)
    problem = apply(m, root)
    if problem is not None:
        return Outcome(m.id, "ERROR", problem, 0.0)
    code, out = pytest(root, m.tests)
    took = time.monotonic() - started
    if code == 1:
        return Outcome(m.id, "caught", "", took)
    if code == -1:
        return Outcome(m.id, "caught", "its tests hung until the time limit", took)
    if code == 0:
        return Outcome(m.id, "SURVIVED", "every test passed with the mutant in place", took)
    return Outcome(m.id, "ERROR", f"pytest exited {code} (not a test failure):\n{out}", took)


def baseline(mutants: Sequence[Mutant], work: Path) -> str | None:
    """The unbroken copy must be what the tests import, and must pass every test the mutants use."""
    root = scratch_copy(work / "baseline")
    probe = subprocess.run(
        [sys.executable, "-c", "import imagegate; print(imagegate.__file__)"],
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=False,
    )
    if not probe.stdout.strip().startswith(str(root)):
        return f"the scratch copy is not what gets imported: {probe.stdout.strip() or probe.stderr[-500:]}"
    tests = sorted({t for m in mutants for t in m.tests})
    code, out = pytest(root, tests)
    return None if code == 0 else f"the tests fail without any mutant (exit {code}):\n{out}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="mutants checked at once")
    ap.add_argument("--only", action="append", default=[], help="a mutant id (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the mutants and the tests that must catch them")
    args = ap.parse_args(argv)
    unknown = set(args.only) - {m.id for m in MUTANTS}
    if unknown:
        ap.error(f"unknown mutant(s): {', '.join(sorted(unknown))}")
    chosen = [m for m in MUTANTS if not args.only or m.id in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.id:34} {m.path:20} {' '.join(t.split('::')[-1] for t in m.tests)}")
        return 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="imagegate-mutants-") as tmp:
        work = Path(tmp)
        problem = baseline(chosen, work)
        if problem is not None:
            print(f"mutation check: {problem}", file=sys.stderr)
            return 2
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            outcomes = list(pool.map(lambda m: check(m, work), chosen))
    for o in outcomes:
        print(f"{o.verdict:8} {o.mutant:34} {o.seconds:5.1f}s {o.detail}")
    bad = [o for o in outcomes if o.verdict != "caught"]
    took = time.monotonic() - started
    print(f"mutation check: {len(outcomes) - len(bad)} of {len(outcomes)} mutants caught in {took:.0f}s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
