"""`--engine spark` gives the Python evaluator's results: every shipped rule's tests (one CLI invocation), a
Logpush folder, a Parquet lake; the golden Spark SQL runs on Spark as written."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import app
from auditor.sources.lake import write_from_files
from tests.helpers import scim, write_ndjson
from tests.integration.test_engine_parity import SCIM_COVERS, _run
from tests.integration.test_logpush_data import PLAIN_COVERS, RULES, _answers, _logpush_folder, _records
from tests.spark import MASTER

pytestmark = pytest.mark.spark
REPO = Path(__file__).resolve().parents[2]
ON_SPARK = ("--engine", "spark", "--spark-master", MASTER)


def test_every_shipped_rules_tests_hold_on_spark(spark, monkeypatch):
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(app.cli, ["test", "rules", *ON_SPARK])
    assert result.exit_code == 0, result.output
    python = CliRunner().invoke(app.cli, ["test", "rules"])
    assert result.output == python.output  # every case, in order, with the same answer


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(RULES)
    records = _records()
    write_ndjson(tmp_path / "plain" / "access_requests.ndjson", records)
    # One SCIM record of another identity provider: the heartbeat still fails, and a lake holds that log.
    write_ndjson(tmp_path / "plain" / "scim_updates.ndjson", [scim(idp_id="idp-2", created_at="2026-11-20T10:00:00Z")])
    return tmp_path


def _without_fetch(document: dict) -> list[dict]:
    return [{**r, "fetch": None} for r in _answers(document)["results"]]


def test_a_logpush_folder_and_a_lake_on_spark_equal_ndjson_on_python(spark, project):
    _logpush_folder(project / "lp" / "access_requests", _records(), "unixnano")
    (project / "lp" / "scim_updates.ndjson").write_text((project / "plain" / "scim_updates.ndjson").read_text())
    write_from_files(project / "lake", {"access_requests": [project / "plain" / "access_requests.ndjson"],
                                        "scim_updates": [project / "plain" / "scim_updates.ndjson"]})
    at = ["rules", "--at", "2026-11-20T12:00:00Z", *SCIM_COVERS]
    python = _run(*at, "--data", "plain", *PLAIN_COVERS, cwd=project)
    assert [r["status"] for r in python["results"]] == ["fail", "fail", "fail"]
    logpush = _run(*at, "--data", "lp", *ON_SPARK, cwd=project)
    assert _without_fetch(logpush) == _without_fetch(python)
    lake = _run(*at, "--data", "lake", *PLAIN_COVERS, *ON_SPARK, cwd=project)
    assert _without_fetch(lake) == _without_fetch(python)


@pytest.mark.parametrize("name", ["office-share", "office-share-period"])
def test_the_golden_spark_sql_runs_on_spark(spark, tmp_path, name):
    import duckdb

    from auditor.sources.relation import empty_relation

    staged = tmp_path / "empty.parquet"
    con = duckdb.connect()
    con.execute(f"COPY ({empty_relation('access_requests')}) TO '{staged}' (FORMAT parquet)")
    con.close()
    spark.read.parquet(str(staged)).createOrReplaceTempView("records_access_requests")
    try:
        golden = (REPO / "tests" / "golden" / "sql" / f"{name}.spark.sql").read_text().rstrip().rstrip(";")
        assert spark.sql(golden).collect() == []
    finally:
        spark.catalog.dropTempView("records_access_requests")
