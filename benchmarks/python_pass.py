"""The Python pass against its floor (issue 18): N records through the starter pack, side by side, min of 3.

    python benchmarks/python_pass.py                   # N = 1,000,000
    python benchmarks/python_pass.py --big 8           # also 8 x N records as one gzip file, run once

Every variant runs in its own child process, interleaved round by round (so load from other jobs on the
machine falls on all of them alike), and each row reports the fastest of `--rounds` runs (wall time from
process start to exit), that run's CPU time (user + system, its helper process included) and its peak RSS:

- the floor: `orjson.loads` on every line of the API-shaped NDJSON file, nothing else;
- `auditor run` over the same records as API-shaped NDJSON (a second process taking blocks of records when the
  machine has a free core: auditor.evaluate.parallel), the same with `AUDITOR_WORKERS=1` (one process) and
  `AUDITOR_WORKERS=2` (two whatever the load), as gzip NDJSON and as Logpush NDJSON (PascalCase names,
  epoch-nanosecond `CreatedAt`);
- `auditor --help`.
The results JSON of the four runs must be identical (apart from the files each names); the script says so.
Data: benchmarks/engines.py's generator (92 days, cached under benchmarks/out/engines-N/).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from engines import REFERENCE, make_data  # noqa: E402

FLOOR = "import orjson, sys\nfor line in open(sys.argv[1], 'rb'):\n    orjson.loads(line)\n"
TARGETS = {"api": ("floor", 2.0), "gzip": ("api", 1.3), "logpush": ("api", 1.2)}


def child(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Run a child process: wall seconds, CPU seconds (with its own children), peak RSS in MB."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1, 2):
        sys.exit(f"{' '.join(args[:4])} exited {code}: {proc.stderr.read().decode().strip() if proc.stderr else ''}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def run_args(data: Path, results: Path) -> list[str]:
    """`auditor run` of the starter pack over `data` at the data's end, on the Python engine (the automatic
    choice takes DuckDB for exports this large)."""
    return [sys.executable, "-m", "auditor", "run", "rules", "--config", "auditor.yaml", "--data", str(data), "--at",
            REFERENCE, "--engine", "python", "--quiet", "--no-progress", "--results", str(results)]


def comparable(results: Path) -> list[dict]:
    """The rule results, without the fetch each names (the files differ by design)."""
    document = json.loads(results.read_text(encoding="utf-8"))
    return [{k: v for k, v in r.items() if k != "fetch"} for r in document["results"]]


def big_gzip(copies: int, one: Path) -> Path:
    """`copies` x the N-record gzip file as one gzip file (its members one after another: the same records
    `copies` times, so the same time span; made in seconds where generating 8M records takes an hour)."""
    out = ROOT / "benchmarks" / "out" / f"gzip-x{copies}-{one.stat().st_size}"
    target = out / "access_requests.ndjson.gz"
    if not target.exists():
        out.mkdir(parents=True, exist_ok=True)
        data = one.read_bytes()
        with (out / "partial.gz").open("wb") as fh:
            for _ in range(copies):
                fh.write(data)
        (out / "partial.gz").rename(target)
        (out / "scim_updates.json").write_bytes((ROOT / "examples" / "data" / "scim_updates.json").read_bytes())
    return out


def main() -> None:
    """Generate, time every variant round by round, print the table and the ratios against the targets."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big", type=int, default=0, metavar="COPIES",
                        help="also run COPIES x the gzip file (e.g. 8: 8M records) once")
    args = parser.parse_args()
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "engines.py"), "--records", str(args.records),
                    "--prepare-only"], check=True)  # in a child: the measuring process stays small
    out = make_data(args.records, ROOT / "benchmarks" / "out")
    r = out / "results"
    r.mkdir(exist_ok=True)
    api = out / "api" / "access_requests.ndjson"
    variants = {
        "floor": ("orjson.loads per line, nothing else (the floor)", [sys.executable, "-c", FLOOR, str(api)], {}),
        "api": ("auditor, API-shaped NDJSON", run_args(out / "api", r / "api.json"), {}),
        "one": ("auditor, API-shaped NDJSON, AUDITOR_WORKERS=1", run_args(out / "api", r / "one.json"),
                {"AUDITOR_WORKERS": "1"}),
        "two": ("auditor, API-shaped NDJSON, AUDITOR_WORKERS=2", run_args(out / "api", r / "two.json"),
                {"AUDITOR_WORKERS": "2"}),
        "gzip": ("auditor, gzip NDJSON", run_args(out / "gzip", r / "gzip.json"), {}),
        "logpush": ("auditor, Logpush NDJSON (epoch ns)", run_args(out / "logpush", r / "logpush.json"), {}),
        "help": ("auditor --help", [sys.executable, "-m", "auditor", "--help"], {}),
    }
    load = os.getloadavg()[0]
    best: dict[str, tuple[float, float, float]] = {}
    walls: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (_, command, env) in variants.items():
            measured = child(command, env)
            walls[name].append(measured[0])
            if name not in best or measured[0] < best[name][0]:
                best[name] = measured
    print(f"{args.records:,} access records, starter pack, min of {args.rounds} (load average {load:.1f} -> "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"{'run':<50} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} {'ratio':>7}  every round's wall s")
    for name, (label, _, _) in variants.items():
        wall, cpu, mem = best[name]
        against = TARGETS.get(name, ("floor", None))[0] if name != "floor" else None
        ratio = f"{wall / best[against][0]:.2f}x" if against and name != "help" else ""
        rounds = " ".join(f"{w:.2f}" for w in walls[name])
        print(f"{label:<50} {wall:>8.3f} {cpu:>8.2f} {mem:>8.0f} {ratio:>7}  {rounds}")
    for name, (against, target) in TARGETS.items():
        print(f"{name} / {against}: {best[name][0] / best[against][0]:.2f}x wall (target <= {target}x)")
    print(f"two processes (AUDITOR_WORKERS=2) / floor: {best['two'][0] / best['floor'][0]:.2f}x wall (target <= 2.0x)")
    two, one = best["two"], best["one"]
    print(f"two processes / one: {two[0] / one[0]:.2f}x wall, {two[1] / one[1]:.2f}x CPU")
    print(f"auditor --help: {best['help'][0] * 1000:.0f} ms (target < 100 ms)")
    same = all(comparable(r / f"{n}.json") == comparable(r / "api.json") for n in ("one", "two", "gzip", "logpush"))
    print(f"identical results JSON: {same}")
    if args.big:
        data = big_gzip(args.big, out / "gzip" / "access_requests.ndjson.gz")
        wall, cpu, mem = child(run_args(data, r / "big.json"))
        print(f"{args.big} x {args.records:,} records, gzip NDJSON, once: {wall:.1f} s wall, {cpu:.1f} s CPU, "
              f"{mem:.0f} MB (target for 8M: <= 15 s)")

if __name__ == "__main__":
    main()
