"""Soak: repeated audits against the emulator with random faults and latency, over loopback only.

Every run's answer must be the files answer, rule by rule, or `error` (fail closed); across the runs,
traced memory, threads and open file descriptors (sockets included) must come back to where they were.

    AUDITOR_SOAK_SECONDS=600 python -m pytest -q tests/soak      # the full form (default: a short CI form)

Each run starts a fresh emulator (new faults), audits through a new client, and closes both; every tenth
run goes through the whole CLI (reports included) instead of the library.
"""

from __future__ import annotations

import gc
import os
import random
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, find, settings

from auditor.cli import cli
from auditor.core.coverage import COMPLETE
from auditor.run.runner import RunOptions
from auditor.run.runner import run as run_plan
from auditor.sources.cloudflare.source import CloudflareSource
from auditor.testing.emulator import Emulator, EmulatorSettings, Faults
from tests.property.model import ACCOUNT, AT, TOKEN, Workspace, answers, client, scenarios

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

SECONDS = float(os.environ.get("AUDITOR_SOAK_SECONDS", "12"))
WORKSPACES = 4
MEMORY_SLACK = 4 * 1024 * 1024  # bytes of traced memory the later runs may hold beyond the warm-up's


def _scenario(seed: int) -> tuple[list[dict], dict[str, list]]:
    """A fixed random scenario with some rules and records (drawn once, reproducibly, with hypothesis)."""
    return find(scenarios(max_rules=5, max_records=80), lambda s: len(s[0]) >= 3 and sum(map(len, s[1].values())) > 40,
                settings=settings(database=None, derandomize=True, max_examples=10_000, phases=[Phase.generate],
                                  suppress_health_check=list(HealthCheck)),
                random=random.Random(seed))


def _faults(rng: random.Random) -> Faults:
    return Faults(
        latency=rng.choice([0.0, 0.0, 0.001, 0.003]),
        rate_limit_first=rng.choice([0, 0, 1, 3]),
        retry_after=rng.choice([0, 1, 600]),
        fail_pages={rng.randint(1, 3): rng.randint(1, 6)} if rng.random() < 0.4 else {},
        fail_status=rng.choice([500, 502, 503]),
        malformed_first=rng.choice([0, 0, 1, 5]),
        cap_per_page=rng.choice([None, None, 2, 7]),
        cap_limit=rng.choice([None, None, 25]),
        result_info_access=rng.random() < 0.5,
    )


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").exists() else 0


def _settle(threads: int, seconds: float = 3.0) -> int:
    """The thread count once the closed emulators' and clients' threads have ended (they end on close)."""
    deadline = time.monotonic() + seconds
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.02)
    return threading.active_count()


def _cli_run(ws: Workspace, emu: Emulator) -> dict[str, dict]:
    import json

    results = ws.root / "soak-results.json"
    result = CliRunner().invoke(cli, [
        "run", str(ws.root / "rules"), "--config", str(ws.root / "auditor.yaml"), "--at", AT, "--account-id", ACCOUNT,
        "--api-base", emu.base_url, "--no-progress", "--quiet", "--results", str(results),
        "--report", f"html={ws.root / 'soak.html'}", "--report", f"sarif={ws.root / 'soak.sarif'}",
    ], env={"CLOUDFLARE_API_TOKEN": TOKEN}, catch_exceptions=False)
    assert result.exit_code in (0, 1, 2), result.output
    assert TOKEN not in result.output + result.stderr
    out = {}
    for r in json.loads(results.read_text())["results"]:
        r.pop("fetch", None)
        r.pop("coverage", None)  # as tests.property.model.answers
        out[r["id"]] = r
    return out


def test_repeated_faulty_audits_stay_correct_and_leak_nothing(tmp_path, monkeypatch):
    from tests.integration.test_api_source import use_virtual_clock

    use_virtual_clock(monkeypatch)  # CLI runs: Retry-After and backoff cost no real time
    rng = random.Random(7)
    spaces = []
    for i in range(WORKSPACES):
        root = tmp_path / f"w{i}"
        root.mkdir()
        ws = Workspace(root, *_scenario(i))
        spaces.append((ws, ws.files()))

    def one_run(n: int) -> tuple[int, int]:
        ws, expected = spaces[n % len(spaces)]
        with Emulator(ws.data, EmulatorSettings(account_id=ACCOUNT, token=TOKEN, faults=_faults(rng))) as emu:
            if n % 10 == 9:
                got = _cli_run(ws, emu)
            else:
                with client(emu, concurrency=rng.randint(1, 4)) as c:
                    got = answers(run_plan(ws.plan, CloudflareSource(c), RunOptions(coverage=COMPLETE)))
        decided = 0
        for rule_id, result in got.items():
            if result["status"] == "error":
                assert result["message"], rule_id
            else:
                assert result == expected[rule_id], (n, rule_id)
                decided += 1
        return decided, len(got)

    threads0, fds0 = threading.active_count(), _open_fds()
    tracemalloc.start()
    try:
        for n in range(10):  # warm-up: imports, caches, the first reports
            one_run(n)
        gc.collect()
        baseline, _ = tracemalloc.get_traced_memory()
        started, runs, decided, total = time.monotonic(), 10, 0, 0
        while time.monotonic() - started < SECONDS or runs < 30:
            d, t = one_run(runs)
            decided, total, runs = decided + d, total + t, runs + 1
        gc.collect()
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current - baseline < MEMORY_SLACK, f"traced memory grew {current - baseline} bytes over {runs} runs"
    assert _settle(threads0) <= threads0, [t.name for t in threading.enumerate()]
    assert _open_fds() <= fds0 + 2, os.listdir("/proc/self/fd")
    assert decided > total // 3, (decided, total)  # faults are frequent, but most rules are still decided
    print(f"soak: {runs} runs in {time.monotonic() - started:.0f} s, {decided}/{total} rule results decided, "
          f"traced memory {current - baseline:+d} bytes, threads {threading.active_count()}, fds {_open_fds()}")
