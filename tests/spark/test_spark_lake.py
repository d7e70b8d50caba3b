"""A Parquet lake on `--engine spark` is read by Spark itself (the lake's files, only the days a rule's steps meet;
no staged copy from DuckDB) and gives the results JSON of python and duckdb over the same records as NDJSON:
single-source rules, a rule whose window prunes days, daily steps, a correlation rule (its rows streamed from
Spark), a value of the wrong type, and a lake whose files were written before `_wrong` and `_odd` existed."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml
from click.testing import CliRunner

from auditor.cli import app
from auditor.core.timeutil import format_time, parse_time
from auditor.run.spark import SparkTables, uri
from auditor.sources.lake import files, write_from_files
from tests.helpers import access, scim, write_ndjson
from tests.integration.test_engine_parity import assert_narrowed, narrowing_case
from tests.integration.test_lake import _same
from tests.spark import MASTER

pytestmark = pytest.mark.spark
AT = "2026-11-20T12:00:00Z"
COVERS = ("--data-covers", "access_requests=2026-11-16T00:00:00Z/2026-11-20T12:00:00Z",
          "--data-covers", "scim_updates=2026-11-16T00:00:00Z/2026-11-20T12:00:00Z")
RULES = yaml.safe_dump({"rules": [
    # 6 hours: its queries read the last day's files only.
    {"id": "denied-burst", "title": "No user denied more than once in 6 hours", "severity": "high",
     "source": "access_requests", "window": "6h", "filter": {"allowed": False}, "group_by": "user_email",
     "expect": {"count": {"max": 1}}},
    {"id": "office-share", "title": "Most sign-ins from the office", "severity": "low",
     "source": "access_requests", "window": "3d",
     "expect": {"ratio": {"where": {"ip_address": {"cidr": "10.0.0.0/8"}}, "min": 0.7}}},
    {"id": "leaver-signs-in", "title": "Nobody signs in after being deprovisioned", "severity": "critical",
     "source": "correlation", "window": "3d",
     "correlate": {"first": {"source": "scim_updates", "filter": {"idp_id": "idp-1", "request_method": "DELETE"}},
                   "then": {"source": "access_requests", "filter": {"allowed": True}},
                   "join": {"resource_user_email": "user_email"}},
     "group_by": "user_email", "expect": {"count": {"max": 0}}},
]}, sort_keys=False)


def _records(odd: bool) -> tuple[list[dict], list[dict]]:
    """Sign-ins over three days (the leaver's after the deletion), SCIM deletions; `odd`: with a value of the
    wrong type and a field present as null."""
    access_records = []
    start = parse_time("2026-11-18T00:00:00Z")
    for i in range(60):
        t = start + i * 3600_000_000 + 123_456  # hourly, up to 2026-11-20T11:00
        access_records.append(access(created_at=format_time(t), allowed=i % 2 != 0,
                                     user_email=f"U{i % 4}@example.com" if i % 7 else "leaver@example.com",
                                     ip_address=f"10.0.0.{i}" if i % 3 else "2001:db8::1"))
    if odd:
        access_records[-1]["allowed"] = "yes"
        access_records[-2]["country"] = None
    deletions = [scim(request_method="DELETE", resource_user_email=email, logged_at=when) for email, when in
                 (("Leaver@Example.com", "2026-11-19T06:30:00Z"), ("nobody@example.com", "2026-11-19T07:00:00Z"))]
    return access_records, deletions


def _project(root: Path, odd: bool) -> Path:
    (root / "rules").mkdir(parents=True)
    (root / "rules" / "rules.yaml").write_text(RULES)
    access_records, deletions = _records(odd)
    write_ndjson(root / "plain" / "access_requests.ndjson", access_records)
    write_ndjson(root / "plain" / "scim_updates.ndjson", deletions)
    write_from_files(root / "lake", {name: [root / "plain" / f"{name}.ndjson"]
                                     for name in ("access_requests", "scim_updates")})
    return root


def _run(root: Path, data: str, *engine: str, when: tuple[str, ...] = ("--at", AT)) -> dict:
    out = root / "results.json"
    result = CliRunner().invoke(app.cli, ["run", str(root / "rules"), *when, "--data", str(root / data),
                                          *COVERS, *engine, "--quiet", "--results", str(out)])
    assert result.exit_code in (0, 1, 2), result.output
    document = json.loads(out.read_text())
    document["summary"].pop("duration_s")
    return document


def _results(document: dict) -> list[dict]:
    return [_same(r) for r in document["results"]]


@pytest.fixture
def spied(monkeypatch):
    """What Spark's queries read: per query, the files of its plan; and the logs handed over by DuckDB."""
    seen: dict[str, list] = {"inputs": [], "mirrored": []}
    execute, batches, mirror = SparkTables.execute, SparkTables.batches, SparkTables.mirror

    def record(tables, sql):
        seen["inputs"].append(set(tables.spark.sql(sql).inputFiles()))

    monkeypatch.setattr(SparkTables, "execute", lambda self, sql: (record(self, sql), execute(self, sql))[1])
    monkeypatch.setattr(SparkTables, "batches", lambda self, sql: (record(self, sql), batches(self, sql))[1])
    monkeypatch.setattr(SparkTables, "mirror", lambda self, con, source, scratch: (
        seen["mirrored"].append(source), mirror(self, con, source, scratch))[1])
    return seen


def test_a_lake_on_spark_is_read_by_spark_and_equals_ndjson_on_python_and_duckdb(spark, tmp_path, spied):
    root = _project(tmp_path, odd=True)
    python = _run(root, "plain")
    assert [r["status"] for r in python["results"]] == ["fail", "fail", "fail"]
    assert python["warnings"]  # the value of the wrong type, warned about alike
    duck = _run(root, "plain", "--engine", "duckdb")
    on_spark = _run(root, "lake", "--engine", "spark", "--spark-master", MASTER)
    assert _results(duck) == _results(python)
    assert _results(on_spark) == _results(python)
    assert on_spark["summary"] == python["summary"]
    assert any("allowed not a boolean" in w for w in on_spark["warnings"])  # named at the lake, not a line

    # Spark read the lake's own files, never a copy DuckDB staged; the 6-hour rule only its last day's.
    assert spied["mirrored"] == []
    lake = root / "lake"
    every = {uri(p) for source in ("access_requests", "scim_updates") for p in files(lake, source)}
    last_day = {uri(p) for p in files(lake, "access_requests") if "date=2026-11-20" in str(p)}
    assert last_day and all(read <= every for read in spied["inputs"])
    assert last_day in spied["inputs"]  # denied-burst's queries
    assert {uri(p) for p in files(lake, "access_requests")} in spied["inputs"]  # office-share's, the correlation's


def test_a_lake_written_before_wrong_and_odd_existed_reads_alike_on_spark_over_daily_steps(spark, tmp_path):
    root = _project(tmp_path, odd=False)
    con = duckdb.connect()
    for source in ("access_requests", "scim_updates"):
        for path in files(root / "lake", source):  # rewritten without the two columns, as older lakes are
            con.execute(f"COPY (SELECT * EXCLUDE (_wrong, _odd) FROM read_parquet('{path}')) TO '{path}.new' "
                        "(FORMAT parquet)")
            Path(f"{path}.new").replace(path)
    assert not {"_wrong", "_odd"} & {r[0] for r in con.execute(
        f"DESCRIBE SELECT * FROM read_parquet('{files(root / 'lake', 'access_requests')[0]}')").fetchall()}
    con.close()
    # Daily steps: each rule reads the days its steps meet.
    when = ("--period", "2026-11-18T12:00:00Z/2026-11-20T12:00:00Z", "--step", "1d")
    python = _run(root, "plain", when=when)
    assert python["period"]["steps"] == 2 and [r["status"] for r in python["results"]] == ["fail", "fail", "fail"]
    duck = _run(root, "plain", "--engine", "duckdb", when=when)
    on_spark = _run(root, "lake", "--engine", "spark", "--spark-master", MASTER, when=when)
    assert _results(duck) == _results(python)
    assert _results(on_spark) == _results(python)
    assert on_spark["summary"] == python["summary"]


def test_a_correlation_reads_only_the_then_rows_and_columns_that_can_matter_on_spark(spark, tmp_path):
    """The semi-join, rendered for Spark and run there, narrows the `then` log as DuckDB's does."""
    plan, con = narrowing_case(tmp_path)
    tables = SparkTables(MASTER, small=True)
    try:
        for name in ("access_requests", "scim_updates"):
            tables.mirror(con, name, tmp_path)
        assert_narrowed(plan, tables)
    finally:
        tables.close()
        con.close()
