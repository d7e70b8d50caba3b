"""A Parquet log lake: written from exports, read by `run --data LAKE` (DuckDB by default, Python on request) with
the same results as the exports, its manifest the coverage."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import app
from auditor.sources.lake import MANIFEST, is_lake, write_from_files
from tests.integration.test_logpush_data import _logpush_folder, _records

REPO = Path(__file__).resolve().parents[2]
AT = ["--at", "2026-11-15T00:00:00Z"]


def _run(*args: str, out: Path) -> dict:
    result = CliRunner().invoke(app.cli, ["run", *args, "--quiet", "--results", str(out)])
    assert result.exit_code in (0, 1, 2), result.output
    document = json.loads(out.read_text())
    document["summary"].pop("duration_s")
    return document


def _same(result: dict) -> dict:
    """A result apart from where its data came from and how its coverage was known."""
    coverage = {**result["coverage"], "logs": [{**c, "basis": None} for c in result["coverage"]["logs"]]}
    message = result["message"]
    for note in ("inferred from the first and last record; state it with --data-covers",
                 "as the lake's manifest lists it"):
        message = message.replace(note, "(how coverage was known)")
    return {**result, "fetch": None, "coverage": coverage, "message": message}


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lake")
    counts = write_from_files(path, {"access_requests": [REPO / "examples/data/access_requests.ndjson.gz"],
                                     "scim_updates": [REPO / "examples/data/scim_updates.json"]})
    assert counts == {"access_requests": 42071, "scim_updates": 1430}
    return path


def test_the_lake_is_hive_partitioned_zstd_parquet_with_a_manifest(lake):
    assert is_lake(lake)
    days = sorted(p.name for p in (lake / "source=access_requests").iterdir())
    assert days[0] == "date=2026-11-01" and days[-1] == "date=2026-11-14"
    manifest = json.loads((lake / MANIFEST).read_text())
    assert set(manifest["logs"]) == {"access_requests", "scim_updates"}


@pytest.mark.parametrize("engine", [[], ["--engine", "python"]])
def test_a_lake_gives_the_results_of_the_exports(lake, tmp_path, monkeypatch, engine):
    monkeypatch.chdir(REPO)
    exports = _run("--data", "examples/data", *AT, out=tmp_path / "a.json")
    from_lake = _run("--data", str(lake), *AT, *engine, out=tmp_path / "b.json")
    # Each result names the data it read (the exports' files, the lake's): nothing else may differ. A lake copied
    # from exports knows no more than they do: its coverage is inferred from the first to the last record too.
    assert [_same(r) for r in from_lake["results"]] == [_same(r) for r in exports["results"]]
    assert {c["basis"] for c in from_lake["coverage"]} == {"inferred"}
    assert from_lake["summary"] == exports["summary"]


def test_the_manifest_is_the_lakes_coverage(lake, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    document = _run("--data", str(lake), "--at", "2026-11-20T00:00:00Z", "--rule", "scim-heartbeat-per-idp",
                    out=tmp_path / "c.json")
    assert ("scim-heartbeat-per-idp: no scim_updates data in the lake covers 2026-11-19T00:00:00Z..2026-11-20T00:00:00Z"
            in document["warnings"])


def test_logpush_objects_go_into_a_lake_unchanged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    records = _records()
    _logpush_folder(tmp_path / "lp", records, "unixnano")
    counts = write_from_files(tmp_path / "lake", {"access_requests": sorted((tmp_path / "lp").rglob("*.log.gz"))})
    assert counts == {"access_requests": len(records)}


@pytest.mark.parametrize("engine", [[], ["--engine", "python"]])
def test_the_manifests_intervals_are_the_coverage_and_an_interval_it_lacks_is_a_gap(lake, tmp_path, monkeypatch,
                                                                                    engine):
    import shutil

    from auditor.core.timeutil import parse_time
    from auditor.sources.lake import read_logs, write_manifest

    holed = tmp_path / "holed"
    shutil.copytree(lake, holed)
    # Synced (read completely) 2026-11-01..15 of both logs, except 2026-11-10 of access_requests: no sync read it.
    whole = ((parse_time("2026-11-01T00:00:00Z"), parse_time("2026-11-15T00:00:00Z")),)
    holes = ((whole[0][0], parse_time("2026-11-10T00:00:00Z")), (parse_time("2026-11-11T00:00:00Z"), whole[0][1]))
    logs = read_logs(holed)
    write_manifest(holed, {"scim_updates": dataclasses.replace(logs["scim_updates"], covered=whole, basis="read"),
                           "access_requests": dataclasses.replace(logs["access_requests"], covered=holes,
                                                                  basis="read")})
    monkeypatch.chdir(REPO)
    document = _run("--data", str(holed), "--at", "2026-11-15T00:00:00Z", *engine, out=tmp_path / "d.json")
    access_log = next(c for c in document["coverage"] if c["log"] == "access_requests")
    assert access_log["basis"] == "lake" and access_log["covered"] == [
        {"since": "2026-11-01T00:00:00Z", "until": "2026-11-10T00:00:00Z"},
        {"since": "2026-11-11T00:00:00Z", "until": "2026-11-15T00:00:00Z"}]
    # A 7-day window over the missing day is undecided, naming the gap; a 24h window after it is decided.
    weekly = next(r for r in document["results"] if r["id"] == "github-login-only-for-git")  # a ratio: undecided
    assert weekly["coverage"]["logs"][0]["missing"] == [{"since": "2026-11-10T00:00:00Z",
                                                         "until": "2026-11-11T00:00:00Z"}]
    assert weekly["status"] == "error"
    assert weekly["message"].startswith("no access_requests data covers 2026-11-10T00:00:00Z..2026-11-11T00:00:00Z")
    assert "a gap in the data" in weekly["message"]
    daily = next(r for r in document["results"] if r["id"] == "denied-login-burst-per-user")
    assert daily["coverage"]["complete"] is True and daily["status"] in ("pass", "fail")


def _scim_pair(tmp_path: Path) -> Path:
    """Two SCIM records alike but for a value of the wrong type (`status` a number): two records."""
    from tests.helpers import scim, write_ndjson

    return write_ndjson(tmp_path / "scim.ndjson", [scim(status=5, logged_at="2026-11-20T10:00:00Z"),
                                                   scim(status=6, logged_at="2026-11-20T10:00:00Z")])


def test_scim_records_differing_only_in_a_wrong_typed_value_are_both_kept(tmp_path):
    from auditor.sources.lake import append, read_logs

    path = _scim_pair(tmp_path)
    lake = tmp_path / "lake"
    assert write_from_files(lake, {"scim_updates": [path]}) == {"scim_updates": 2}
    held = read_logs(lake)["scim_updates"]
    assert append(lake, "scim_updates", [path], held)[1] == 0  # both are held already: nothing twice
    (tmp_path / "new").mkdir()
    assert append(tmp_path / "new", "scim_updates", [path], None)[1] == 2  # each is its own record


def test_a_lake_written_before_odd_values_were_kept_is_synced_into_without_duplicates(tmp_path):
    import duckdb

    from auditor.sources.lake import append, files, read_logs
    from tests.helpers import scim, write_ndjson

    path = write_ndjson(tmp_path / "scim.ndjson", [scim(logged_at="2026-11-20T10:00:00Z")])
    lake = tmp_path / "lake"
    write_from_files(lake, {"scim_updates": [path]})
    for part in files(lake, "scim_updates"):  # as an older auditor wrote it: no _wrong, no _odd
        quoted = str(part).replace("'", "''")
        duckdb.sql(f"COPY (SELECT * EXCLUDE (_wrong, _odd) FROM read_parquet('{quoted}')) TO '{quoted}.old' "
                   "(FORMAT parquet)")
        Path(f"{part}.old").replace(part)
    assert append(lake, "scim_updates", [path], read_logs(lake)["scim_updates"])[1] == 0


def test_a_correlation_rules_coverage_warnings_come_in_its_sides_order_whatever_the_hash_seed(lake, tmp_path):
    """The lake misses part of a correlation rule's window in both its logs: one warning per log, `first` side's
    log first, in every process (a set of the logs once ordered them by string hash, which varies per process)."""
    import os
    import subprocess
    import sys

    seen = []
    for seed in ("1", "2"):
        out = tmp_path / f"{seed}.json"
        subprocess.run([sys.executable, "-m", "auditor", "run", "--data", str(lake), *AT, "--quiet", "--no-progress",
                        "--results", str(out)], cwd=REPO, env={**os.environ, "PYTHONHASHSEED": seed}, check=False)
        seen.append([w for w in json.loads(out.read_text())["warnings"] if w.startswith("deprovisioned-user")])
    assert seen[0] == seen[1]
    assert [w.split()[2] for w in seen[0]] == ["scim_updates", "access_requests"]
