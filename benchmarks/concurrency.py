"""Pages fetched concurrently: one paged SCIM fetch at --concurrency 1 and 4, over the emulator with latency.

    python benchmarks/concurrency.py [--latency 0.05] [--pages 8]

Serves `pages` x 10 SCIM records from the in-process emulator, each request delayed by `latency`, and times
`auditor run --per-page 10` (the CLI's main(argv), in this process) at both concurrencies. Once the first
page gives the total, the other pages are asked at once: at 4 in flight the run should take well under
`pages` x latency (the former unit test asserted < (pages - 1) x latency; timings belong here).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from auditor.cli import main  # noqa: E402
from auditor.testing.emulator import Emulator, Faults  # noqa: E402
from tests.helpers import scim  # noqa: E402

ACCOUNT, TOKEN, AT = "acc0123", "benchmark-token-not-a-secret", "2026-11-15T12:00:00Z"


def timed_run(root: Path, base_url: str, concurrency: int) -> float:
    """Wall seconds of one `auditor run` over the API."""
    argv = ["run", str(root / "rules"), "--config", str(root / "auditor.yaml"), "--at", AT, "--account-id",
            ACCOUNT, "--api-base", base_url, "--no-progress", "--quiet", "--per-page", "10",
            "--concurrency", str(concurrency)]
    started = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):
        code = main(argv)
    elapsed = time.perf_counter() - started
    if code not in (0, 1):
        raise SystemExit(f"auditor run exited {code}")
    return elapsed


def main_benchmark() -> None:
    """Print the wall time at each concurrency and the speed-up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--pages", type=int, default=8)
    args = parser.parse_args()
    os.environ["CLOUDFLARE_API_TOKEN"] = TOKEN
    records = [scim(idp_id="idp-0", logged_at=f"2026-11-15T{i // 60:02d}:{i % 60:02d}:00Z")
               for i in range(args.pages * 10)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "rules").mkdir()
        (root / "rules" / "r.yaml").write_text(yaml.safe_dump({"rules": [
            {"id": "all-scim", "title": "all", "source": "scim_updates", "window": "24h",
             "expect": {"count": {"max": 10}}}]}))
        (root / "auditor.yaml").write_text("scim_idp_ids: [idp-0]\n")
        figures = {}
        for concurrency in (1, 4):
            with Emulator({"scim_updates": records}, account_id=ACCOUNT, token=TOKEN,
                          faults=Faults(latency=args.latency)) as emu:
                figures[concurrency] = timed_run(root, emu.base_url, concurrency)
    print(f"{args.pages} pages of 10 SCIM records, {args.latency * 1000:.0f} ms per request")
    for concurrency, seconds in figures.items():
        print(f"  --concurrency {concurrency}: {seconds:.3f} s")
    print(f"  speed-up: {figures[1] / figures[4]:.2f}x (bound: {args.pages - 1} pages after the first)")


if __name__ == "__main__":
    main_benchmark()
