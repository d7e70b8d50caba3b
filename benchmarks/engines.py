"""Engines side by side: N generated access records through the starter pack, Python vs DuckDB.

    python benchmarks/engines.py                                          # N = 1,000,000
    python benchmarks/engines.py --records 10000000 --out /tmp/auditor-bench  # the issue's size (generated once)

Measured in one run, each variant in its own child process, min of --repeat runs (3) of its wall time (process
start to exit), min of its CPU time (user + system, all threads) and max of its peak RSS; every run states the
data's coverage (`--data-covers`), so every rule is decided:
- single run at the reference time: the Python engine over the records as gzip NDJSON, and DuckDB over the same
  records in a Parquet lake (`auditor.sources.lake`); the two results JSON must be equal (apart from the files
  each names);
- a 92-step daily periodic audit (`--period` of 92 days, `--step 1d`) on DuckDB over the lake, and on Python
  over gzip NDJSON (once: the slowest variant; `--skip-python-periodic` leaves it out);
- the Python engine over API-shaped NDJSON vs the same records as Logpush NDJSON (epoch nanoseconds, PascalCase):
  the first --ratio-records of them (1,000,000; the ratio does not depend on N);
- on request (`--only spark`, with the spark extra): the single run on Spark (`--spark-master`, local[2]) reading
  the lake itself, against DuckDB's results over it (the CPU column is the Python process's; the JVM's is not in it).
Generated files are cached under --out (default benchmarks/out)/engines-N/ and reused.
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
PY, DUCK = ("--engine", "python"), ("--engine", "duckdb")  # never the automatic choice: both are measured


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


def auditor(data: Path, results: Path, *args: str) -> tuple[float, float, float, dict]:
    """`auditor run` in a child process: wall seconds, CPU seconds, the child's own peak RSS (MB), its results."""
    results.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "auditor", "run", "--data", str(data), "--quiet", "--results",
                             str(results), "--no-progress", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1, 2) or not results.exists():  # 2: some rule undecided (a window the data misses)
        sys.exit(f"auditor exited {code}: {proc.stderr.read().decode().strip() if proc.stderr else ''}")
    document = json.loads(results.read_text(encoding="utf-8"))
    document["summary"].pop("duration_s")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, document


def measured(repeat: int, data: Path, results: Path, *args: str) -> tuple[float, float, float, dict]:
    """min wall, min CPU, max peak RSS over `repeat` runs, and the results of the last."""
    runs = [auditor(data, results, *args) for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs), max(r[2] for r in runs), runs[-1][3]


def answers(document: dict) -> list[dict]:
    """The results apart from the files each names (an export and a lake are different files)."""
    return [{k: v for k, v in r.items() if k != "fetch"} for r in document["results"]]


def head(out: Path, kind: str, n: int) -> tuple[Path, str]:
    """The first n records of the API or Logpush NDJSON in a folder of their own (cached), and a reference time
    just after the last of them."""
    folder = out / f"{kind}-{n}"
    target = folder / "access_requests.ndjson"
    if not (folder / "done").exists():
        folder.mkdir(exist_ok=True)
        with (out / kind / "access_requests.ndjson").open("rb") as src, target.open("wb") as dst:
            for i, line in enumerate(src):
                if i >= n:
                    break
                dst.write(line)
        shutil.copy(out / kind / "scim_updates.json", folder / "scim_updates.json")
        (folder / "done").write_text("ok\n")
    with target.open("rb") as f:
        f.seek(max(0, target.stat().st_size - 4096))
        last = json.loads(f.read().splitlines()[-1])
    t_us = parse_time(last["created_at"]) if "created_at" in last else last["CreatedAt"] // 1000
    return folder, fmt_us(t_us - t_us % DAY_US + DAY_US, 0)


def main() -> None:
    """Generate, time every variant, print the table and the targets."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant (min of them)")
    parser.add_argument("--ratio-records", type=int, default=1_000_000,
                        help="records of the Logpush vs API NDJSON comparison")
    parser.add_argument("--skip-python-periodic", action="store_true", help="the slowest variant")
    parser.add_argument("--only", default="single,periodic,ratio",
                        help="which comparisons to run (default single,periodic,ratio; `spark` too on request)")
    parser.add_argument("--spark-master", default="local[2]", help="for --only spark (the spark extra and Java)")
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
    print(f"{args.records:,} access records over {DAYS} days (data ready in {time.perf_counter() - started:.0f} s); "
          f"min of {args.repeat} runs; load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    r = out / "results"
    r.mkdir(exist_ok=True)
    covers = ("--data-covers", PERIOD)
    at = ("--at", REFERENCE, *covers)
    rows = []

    def row(name: str, wall: float, cpu: float, mem: float) -> None:
        rows.append((name, wall, cpu, mem))
        print(f"  {name:<52} {wall:>8.2f} s wall {cpu:>8.2f} s CPU {mem:>7.0f} MB", flush=True)

    only = set(args.only.split(","))
    if "single" in only:
        py_wall, py_cpu, py_mem, py = measured(args.repeat, out / "gzip", r / "py.json", *at, *PY)
        row("single run, Python, gzip NDJSON", py_wall, py_cpu, py_mem)
        dk_wall, dk_cpu, dk_mem, dk = measured(args.repeat, out / "lake", r / "duck.json", *at, *DUCK)
        row("single run, DuckDB, Parquet lake", dk_wall, dk_cpu, dk_mem)
        print(f"DuckDB lake vs Python gzip: {py_wall / dk_wall:.1f}x faster by wall time, {py_cpu / dk_cpu:.1f}x by "
              f"CPU (target >= 15x, <= 2 s at 10M); identical results: {answers(dk) == answers(py)}", flush=True)
    if "periodic" in only:
        period = ("--period", PERIOD, "--step", "1d", *covers)
        dp_wall, dp_cpu, dp_mem, dp = measured(args.repeat, out / "lake", r / "duck-period.json", *period, *DUCK)
        row(f"{dp['period']['steps']}-step daily period, DuckDB, lake", dp_wall, dp_cpu, dp_mem)
        same_period = None
        if not args.skip_python_periodic:
            pp_wall, pp_cpu, pp_mem, pp = measured(1, out / "gzip", r / "py-period.json", *period, *PY)
            row(f"{pp['period']['steps']}-step daily period, Python, gzip NDJSON (1 run)", pp_wall, pp_cpu, pp_mem)
            same_period = answers(pp) == answers(dp)
        print(f"periodic on DuckDB: {dp_wall:.2f} s (target <= 15 s at 10M); identical to Python: {same_period}",
              flush=True)
    if "spark" in only:  # on request: Spark reading the lake itself, against DuckDB over the same lake
        sk_wall, sk_cpu, sk_mem, sk = measured(args.repeat, out / "lake", r / "spark.json", *at, "--engine", "spark",
                                               "--spark-master", args.spark_master)
        row(f"single run, Spark {args.spark_master}, lake (CPU: Python only)", sk_wall, sk_cpu, sk_mem)
        if "single" not in only:
            dk_wall, _, _, dk = measured(1, out / "lake", r / "duck.json", *at, *DUCK)
        print(f"Spark vs DuckDB over the lake: {sk_wall / dk_wall:.1f}x DuckDB's wall time; identical results: "
              f"{answers(sk) == answers(dk)}", flush=True)
    if "ratio" in only:
        k = min(args.ratio_records, args.records)
        api_dir, api_at = head(out, "api", k)
        lp_dir, _ = head(out, "logpush", k)
        sample = ("--at", api_at, "--data-covers", f"{fmt_us(START_US, 0)}/{api_at}")
        api_wall, api_cpu, api_mem, api = measured(args.repeat, api_dir, r / "api.json", *sample, *PY)
        row(f"single run, Python, API NDJSON ({k:,})", api_wall, api_cpu, api_mem)
        lp_wall, lp_cpu, lp_mem, lp = measured(args.repeat, lp_dir, r / "logpush.json", *sample, *PY)
        row(f"single run, Python, Logpush NDJSON ({k:,})", lp_wall, lp_cpu, lp_mem)
        print(f"Logpush / API NDJSON in Python: {lp_wall / api_wall:.2f} by wall time, {lp_cpu / api_cpu:.2f} by CPU "
              f"(target <= 1.2); identical results: {answers(lp) == answers(api)}", flush=True)
    print(f"peak memory: {max(m for *_, m in rows):.0f} MB (largest variant); load average "
          f"{os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
