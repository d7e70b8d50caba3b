"""Offline benchmark: N generated access records through the starter rule pack from NDJSON files.

    python benchmarks/run.py                 # N = 100,000 and 1,000,000
    python benchmarks/run.py --records 250000

Prints records/s end to end (process start to exit, as a user sees it) and the peak RSS of the
auditor process. Generated files are cached under benchmarks/out/.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
REFERENCE = "2026-11-15T00:00:00Z"
sys.path.insert(0, str(ROOT / "examples"))

from generate import END_US, START_US, generate_access  # noqa: E402


def make_data(n: int) -> Path:
    """Write n records (cached) to benchmarks/out/N/access_requests.ndjson, plus the sample SCIM log."""
    folder = OUT / str(n)
    target = folder / "access_requests.ndjson"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        rng = random.Random(7)
        with tmp.open("w", encoding="utf-8") as fh:
            for record in generate_access(n, rng, START_US, END_US):
                fh.write(json.dumps(record, separators=(",", ":")) + "\n")
        tmp.rename(target)
    scim = ROOT / "examples" / "data" / "scim_updates.json"
    if scim.exists() and not (folder / scim.name).exists():
        shutil.copy(scim, folder / scim.name)
    return folder


def measure(n: int) -> dict[str, float]:
    """Run `auditor run` over n records in a child process; wall time and the child's peak RSS."""
    folder = make_data(n)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "auditor", "run", "--data", str(folder), "--at", REFERENCE, "--quiet",
         "--results", str(folder / "results.json")],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        sys.exit(f"auditor exited {proc.returncode}: {proc.stderr.strip()}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    results = json.loads((folder / "results.json").read_text())
    return {
        "records": results["summary"]["records_fetched"],
        "rules": results["summary"]["rules"],
        "wall_s": wall,
        "records_per_s": n / wall,
        # ru_maxrss of children is the max over all children so far; runs go smallest first.
        "peak_rss_mb": max(peak_kb, before) / 1024,
    }


def main() -> None:
    """Parse arguments, run each size, print a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, action="append", help="records to generate (repeatable)")
    args = parser.parse_args()
    sizes = sorted(args.records or [100_000, 1_000_000])
    print(f"{'records':>10} {'rules':>5} {'wall s':>8} {'records/s':>11} {'peak RSS MB':>12}")
    for n in sizes:
        m = measure(n)
        print(f"{n:>10,} {m['rules']:>5} {m['wall_s']:>8.2f} {m['records_per_s']:>11,.0f} {m['peak_rss_mb']:>12.1f}")


if __name__ == "__main__":
    main()
