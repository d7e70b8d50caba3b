"""Periodic audit benchmark: a 90-day period at 1-day steps through the starter pack, from files.

    python benchmarks/periodic.py                 # 90 days, 1d steps; 10 separate runs to compare
    python benchmarks/periodic.py --separate 90   # run every step as its own `run --at` (slow)

Generates 90 days of sample data with the sample-data generator (`examples/generate.py`: the same
population and daily volume as the bundled two weeks, about 3,000 access records a day, plus the SCIM
scenario and the planted incidents over the same range), cached under benchmarks/out/periodic-90d/.
Then, each in a child process as a user runs it:

1. `auditor run --data … --period START/END --step 1d` (one pass over the files, 90 steps);
2. `auditor run --data … --at END` (one step, for scale);
3. `auditor run --data … --at T_i` for N of the 90 steps, spread over the period (the alternative to a
   periodic run: one run per step), extrapolated to 90 steps unless N is 90.

Prints wall time (process start to exit) and peak RSS of each, and checks that the periodic run's
timeline equals the separate runs' status and violations at the steps it ran.
"""

from __future__ import annotations

import argparse
import gzip
import heapq
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "periodic-90d"
sys.path.insert(0, str(ROOT / "examples"))

from generate import (  # noqa: E402
    ACCESS_FILE,
    DEFAULT_ACCESS,
    DEFAULT_SEED,
    END_US,
    SCIM_FILE,
    START_US,
    build_scenario,
    fmt_us,
    generate_access,
    planted_access,
)

DAYS = 90
DAY_US = 86400 * 1_000_000
PERIOD_START_US = END_US - DAYS * DAY_US
PERIOD = f"{fmt_us(PERIOD_START_US, 0)}/{fmt_us(END_US, 0)}"


def make_data() -> Path:
    """90 days of access and SCIM records (cached): the sample data's daily volume over the whole period."""
    target = OUT / ACCESS_FILE
    if target.exists():
        return OUT
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(DEFAULT_SEED)
    scenario = build_scenario(rng, PERIOD_START_US, END_US)
    planted = planted_access(rng, scenario)
    per_day = DEFAULT_ACCESS * DAY_US // (END_US - START_US)
    baseline = generate_access(per_day * DAYS, rng, PERIOD_START_US, END_US, scenario.population)
    scim = {"success": True, "errors": [], "messages": [], "result": scenario.scim}
    (OUT / SCIM_FILE).write_text(json.dumps(scim) + "\n", encoding="utf-8")
    tmp = target.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as fh:
        for record in heapq.merge(baseline, planted, key=lambda r: r["created_at"]):
            fh.write(json.dumps(record, separators=(",", ":")) + "\n")
    tmp.rename(target)
    return OUT


def auditor(*args: str, results: Path) -> tuple[float, float, dict]:
    """Run the CLI in a child process; wall seconds, the child's peak RSS (MB) and its results JSON."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "auditor", "run", "--data", str(OUT), "--quiet", "--results",
                           str(results), *args], cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        sys.exit(f"auditor exited {proc.returncode}: {proc.stderr.strip()}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, peak, json.loads(results.read_text(encoding="utf-8"))


def main() -> None:
    """Generate the data, time the runs, print a table, check the periodic answer against the single runs."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--separate", type=int, default=10, help="separate single-step runs to time (1..90)")
    args = parser.parse_args()
    make_data()
    # ru_maxrss of children is the maximum over all children so far: run the periodic run first.
    wall, peak, periodic = auditor("--period", PERIOD, "--step", "1d", results=OUT / "periodic.json")
    steps = periodic["period"]["steps"]
    records = periodic["summary"]["records_fetched"]
    rules = periodic["summary"]["rules"]
    print(f"period {PERIOD}, {steps} steps of 1d, {rules} rules, {records:,} records from files")
    print(f"{'run':<40} {'wall s':>8} {'s/step':>8} {'peak RSS MB':>12}")
    print(f"{'periodic (--period, one pass)':<40} {wall:>8.2f} {wall / steps:>8.3f} {peak:>12.1f}")
    end_wall, _, _ = auditor("--at", periodic["reference_time"], results=OUT / "single.json")
    print(f"{'one step (--at END)':<40} {end_wall:>8.2f} {end_wall:>8.3f} {'':>12}")

    n = max(1, min(args.separate, steps))
    chosen = sorted({round(i * (steps - 1) / max(n - 1, 1)) for i in range(n)})
    total = 0.0
    mismatches = 0
    for i in chosen:
        at = periodic["results"][0]["timeline"][i]["at"]
        step_wall, _, single = auditor("--at", at, results=OUT / "step.json")
        total += step_wall
        for p, s in zip(periodic["results"], single["results"], strict=True):
            step = p["timeline"][i]
            if (step["status"], step["violations"]) != (s["status"], s["violations"]):
                mismatches += 1
                print(f"  MISMATCH {p['id']} at {at}: periodic {step}, single {s['status']}/{s['violations']}")
    label = f"separate runs ({len(chosen)} of {steps}" + (")" if len(chosen) == steps else ", extrapolated)")
    estimate = total / len(chosen) * steps
    print(f"{label:<40} {estimate:>8.2f} {total / len(chosen):>8.3f} {'':>12}")
    print(f"periodic run is {estimate / wall:.1f}x faster than one run per step; "
          f"{len(chosen)} steps checked, {mismatches} mismatches")
    if mismatches:
        sys.exit(1)


if __name__ == "__main__":
    main()
