"""Engines side by side: N generated access records through the starter pack, Python vs DuckDB.

    python benchmarks/engines.py                    # N = 1,000,000
    python benchmarks/engines.py --records 10000000 # the issue's target size (generation takes long)

Measured in one run, each in its own child process (wall time from process start to exit, and that process's
peak RSS):
- the Python engine over the records as gzip NDJSON, and DuckDB over the same records in a Parquet lake
  (`auditor.sources.lake`), single run at the reference time; the two results JSON must be equal;
- a 92-step daily periodic audit (`--period` of 92 days, `--step 1d`) on DuckDB over the lake (and on Python);
- the Python engine over API-shaped NDJSON vs the same records as Logpush NDJSON (epoch nanoseconds).
Generated files are cached under benchmarks/out/engines-N/.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from generate import END_US, fmt_us, generate_access  # noqa: E402

from auditor.core.fields import LOGPUSH_NAMES  # noqa: E402
from auditor.core.timeutil import parse_time  # noqa: E402
from auditor.sources.lake import write_from_files  # noqa: E402

DAY_US = 86400 * 1_000_000
DAYS = 92
START_US = END_US - DAYS * DAY_US
REFERENCE = fmt_us(END_US, 0)
PERIOD = f"{fmt_us(START_US, 0)}/{fmt_us(END_US, 0)}"  # 92 steps of 1d: T_1 = start + 1d .. T_92 = end
TO_LOGPUSH = {v: k for k, v in LOGPUSH_NAMES.items()}


def make_data(n: int, base: Path) -> Path:
    """n records over 92 days as gzip NDJSON, plain NDJSON, Logpush NDJSON and a lake (cached under `base`)."""
    out = base / f"engines-{n}"
    done = out / "done"
    if done.exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    for sub in ("gzip", "api", "logpush"):
        (out / sub).mkdir(parents=True)
    rng = random.Random(7)
    with gzip.open(out / "gzip" / "access_requests.ndjson.gz", "wt", encoding="utf-8", compresslevel=1) as gz, \
            (out / "api" / "access_requests.ndjson").open("w", encoding="utf-8") as api, \
            (out / "logpush" / "access_requests.ndjson").open("w", encoding="utf-8") as lp:
        for record in generate_access(n, rng, START_US, END_US):
            line = json.dumps(record, separators=(",", ":")) + "\n"
            gz.write(line)
            api.write(line)
            shaped = {TO_LOGPUSH.get(k, k): v for k, v in record.items()}
            shaped["CreatedAt"] = parse_time(record["created_at"]) * 1000
            lp.write(json.dumps(shaped, separators=(",", ":")) + "\n")
    scim = ROOT / "examples" / "data" / "scim_updates.json"
    for sub in ("gzip", "api", "logpush"):
        shutil.copy(scim, out / sub / scim.name)
    write_from_files(out / "lake", {"access_requests": [out / "gzip" / "access_requests.ndjson.gz"],
                                    "scim_updates": [scim]})
    done.write_text("ok\n")
    return out


def auditor(data: Path, results: Path, *args: str) -> tuple[float, float, dict]:
    """`auditor run` in a child process: wall seconds, the child's own peak RSS (MB), its results JSON."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "auditor", "run", "--data", str(data), "--quiet", "--results",
                             str(results), *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        sys.exit(f"auditor exited {code}: {proc.stderr.read().decode().strip() if proc.stderr else ''}")
    document = json.loads(results.read_text(encoding="utf-8"))
    document["summary"].pop("duration_s")
    return wall, usage.ru_maxrss / 1024, document


def main() -> None:
    """Generate, time every variant, print the table and the targets."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--skip-python-periodic", action="store_true", help="the slowest variant")
    parser.add_argument("--prepare-only", action="store_true", help="generate the data and stop")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out",
                        help="where the generated data is cached (default benchmarks/out; /tmp for 10M)")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.prepare_only:
        make_data(args.records, args.out)
        return
    # Generated in a child process: a forked child's peak RSS starts from its parent's, so the measuring
    # process must stay small.
    subprocess.run([sys.executable, __file__, "--records", str(args.records), "--prepare-only", "--out",
                    str(args.out)], check=True)
    out = make_data(args.records, args.out)
    print(f"{args.records:,} access records over {DAYS} days (data ready in {time.perf_counter() - started:.0f} s)")
    r = out / "results"
    r.mkdir(exist_ok=True)
    at = ("--at", REFERENCE)
    rows = []
    py_wall, py_mem, py = auditor(out / "gzip", r / "py.json", *at)
    rows.append(("single run, Python, gzip NDJSON", py_wall, py_mem))
    dk_wall, dk_mem, dk = auditor(out / "lake", r / "duck.json", *at)
    rows.append(("single run, DuckDB, Parquet lake", dk_wall, dk_mem))
    same = dk["results"] == py["results"]
    period = ("--period", PERIOD, "--step", "1d")
    dp_wall, dp_mem, dp = auditor(out / "lake", r / "duck-period.json", *period)
    rows.append((f"{dp['period']['steps']}-step daily period, DuckDB, lake", dp_wall, dp_mem))
    same_period = None
    if not args.skip_python_periodic:
        pp_wall, pp_mem, pp = auditor(out / "gzip", r / "py-period.json", *period)
        rows.append((f"{pp['period']['steps']}-step daily period, Python, gzip NDJSON", pp_wall, pp_mem))
        same_period = pp["results"] == dp["results"]
    api_wall, api_mem, api = auditor(out / "api", r / "api.json", *at)
    rows.append(("single run, Python, API NDJSON", api_wall, api_mem))
    lp_wall, lp_mem, lp = auditor(out / "logpush", r / "logpush.json", *at)
    rows.append(("single run, Python, Logpush NDJSON", lp_wall, lp_mem))
    print(f"{'run':<48} {'wall s':>8} {'peak MB':>8}")
    for name, wall, mem in rows:
        print(f"{name:<48} {wall:>8.2f} {mem:>8.0f}")
    print(f"DuckDB lake vs Python gzip: {py_wall / dk_wall:.1f}x faster (target >= 15x, <= 2 s at 10M); "
          f"identical results: {same}")
    print(f"periodic on DuckDB: {dp_wall:.2f} s (target <= 15 s at 10M); identical to Python: {same_period}")
    print(f"Logpush / API NDJSON in Python: {lp_wall / api_wall:.2f} (target <= 1.2); identical results: "
          f"{lp['results'] == api['results']}")


if __name__ == "__main__":
    main()
