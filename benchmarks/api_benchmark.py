"""API benchmark: the starter rule pack over the sample data through the emulator, auditor vs an SDK script.

    python benchmarks/api_benchmark.py [--latency 0.02] [--repeat 1]

Starts `auditor emulate` on examples/data (a separate process, 20 ms added to every request), then
runs `auditor run` (rules/ with auditor.yaml) and benchmarks/sdk_baseline.py (one SDK fetch per rule,
sequential pages, filtering in Python) against it, each on a fresh emulator. Prints requests and wall
time for both and the ratios. Needs `pip install cloudflare` (benchmark-only dependency).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

AT = "2026-11-15T00:00:00Z"
ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "benchmark-token-not-a-secret"


class Emulator:
    """`auditor emulate` in a child process, so its work does not share the benchmarked process's GIL."""

    def __init__(self, latency: float) -> None:
        command = [sys.executable, "-m", "auditor", "emulate", "--data", str(ROOT / "examples" / "data"),
                   "--port", "0", "--latency", str(latency), "--account", ACCOUNT, "--token", TOKEN]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        if "serving" not in line:
            self.process.kill()
            raise SystemExit(f"emulator did not start: {line!r}")
        self.base_url = line.split()[-1]

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def run_auditor(base_url: str) -> tuple[int, float, dict]:
    """`auditor run` as a user runs it; (requests, wall seconds, summary)."""
    env = {**os.environ, "CLOUDFLARE_API_TOKEN": TOKEN, "CLOUDFLARE_ACCOUNT_ID": ACCOUNT}
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.json"
        command = [sys.executable, "-m", "auditor", "run", "--at", AT, "--api-base", base_url, "--quiet",
                   "--no-progress", "--results", str(results)]
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True)
        stderr = child.stderr.read() if child.stderr else ""
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1):
            raise SystemExit(f"auditor run failed ({code}): {stderr}")
        document = json.loads(results.read_text())
    statuses = {r["id"]: r["status"] for r in document["results"]}
    summary = document["summary"]
    print(f"auditor: {summary['records_fetched']} records evaluated, run {summary['duration_s']:.2f} s inside a "
          f"{wall:.2f} s process, peak RSS {usage.ru_maxrss / 1024:.0f} MB")
    return summary["api_requests"], wall, statuses


def run_sdk(base_url: str) -> tuple[int, float, dict]:
    """The SDK baseline in this process, its requests counted by an httpx event hook."""
    import cloudflare
    import sdk_baseline

    count = 0

    def counted(request: httpx.Request) -> None:
        nonlocal count
        count += 1

    original = cloudflare.Cloudflare

    def client(**kwargs: object) -> cloudflare.Cloudflare:
        return original(**kwargs, http_client=httpx.Client(event_hooks={"request": [counted]}))

    sdk_baseline.cloudflare.Cloudflare = client  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        statuses = sdk_baseline.run_baseline(base_url, ACCOUNT, TOKEN, AT, ROOT / "rules", ROOT / "auditor.yaml")
        wall = time.perf_counter() - started
    finally:
        sdk_baseline.cloudflare.Cloudflare = original  # type: ignore[assignment]
    return count, wall, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.02, help="Seconds the emulator adds per request.")
    args = parser.parse_args()
    with Emulator(args.latency) as emu:
        ours_requests, ours_wall, ours = run_auditor(emu.base_url)
    with Emulator(args.latency) as emu:
        sdk_requests, sdk_wall, theirs = run_sdk(emu.base_url)
    # The script knows no waivers: a rule auditor reports `waived` failed before its waiver applied.
    agree = all({"waived": "fail"}.get(ours.get(rule), ours.get(rule)) == status for rule, status in theirs.items())
    print(f"starter pack ({len(ours)} rules) over examples/data, emulator latency {args.latency * 1000:.0f} ms")
    print(f"{'':24}{'requests':>10}{'wall s':>10}")
    print(f"{'auditor run':24}{ours_requests:>10}{ours_wall:>10.2f}")
    print(f"{'SDK script (baseline)':24}{sdk_requests:>10}{sdk_wall:>10.2f}")
    print(f"{'ratio (baseline/auditor)':24}{sdk_requests / ours_requests:>9.1f}x{sdk_wall / ours_wall:>9.1f}x")
    print(f"same rule statuses: {'yes' if agree else 'NO'}")
    if not agree:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
