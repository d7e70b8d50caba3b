"""`run --engine duckdb` gives the Python engine's results JSON: the starter pack over the sample export, a
periodic audit, a Logpush folder, errors on bad data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from auditor.cli import app
from tests.helpers import SAMPLE_COVERS, write_ndjson
from tests.integration.test_logpush_data import PLAIN_COVERS, RULES, _answers, _logpush_folder, _records

REPO = Path(__file__).resolve().parents[2]
# The SCIM log of these tests is empty over the heartbeat's day: stated, so the heartbeat is decided (it fails).
SCIM_COVERS = ("--data-covers", "scim_updates=2026-11-19T00:00:00Z/2026-11-21T00:00:00Z")


def _run(*args: str, cwd: Path) -> dict:
    out = cwd / "results.json"
    result = CliRunner().invoke(app.cli, ["run", *args, "--quiet", "--results", str(out)])
    assert result.exit_code in (0, 1, 2), result.output
    document = json.loads(out.read_text())
    document["summary"].pop("duration_s")
    return document


@pytest.mark.parametrize("when", [["--at", "2026-11-15T00:00:00Z"],
                                  ["--period", "2026-11-01T00:00:00Z/2026-11-08T00:00:00Z"]])
def test_the_starter_pack_over_the_sample_is_identical_on_duckdb(tmp_path, monkeypatch, when):
    monkeypatch.chdir(REPO)
    args = ["--data", "examples/data", "--data-covers", SAMPLE_COVERS, *when]
    python = _run(*args, cwd=tmp_path)
    duck = _run(*args, "--engine", "duckdb", cwd=tmp_path)
    assert duck == python
    assert {"pass", "fail"} <= {r["status"] for r in python["results"]}


def test_a_logpush_folder_on_duckdb_equals_ndjson_on_python(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(RULES)
    records = _records()
    _logpush_folder(tmp_path / "lp" / "access_requests", records, "unixnano")
    write_ndjson(tmp_path / "lp" / "scim_updates.ndjson", [])
    write_ndjson(tmp_path / "plain" / "access_requests.ndjson", records)
    write_ndjson(tmp_path / "plain" / "scim_updates.ndjson", [])
    at = ["rules", "--at", "2026-11-20T12:00:00Z"]
    duck = _run(*at, "--data", "lp", "--engine", "duckdb", *SCIM_COVERS, cwd=tmp_path)
    python = _run(*at, "--data", "plain", *PLAIN_COVERS, *SCIM_COVERS, cwd=tmp_path)
    # Each result names the files it read (lp/... and plain/...): all else is equal.
    assert [r["fetch"].split()[0] for r in duck["results"]] == ["files"] * 3
    assert ([{**r, "fetch": None} for r in _answers(duck)["results"]]
            == [{**r, "fetch": None} for r in _answers(python)["results"]])  # Logpush names vs stated coverage
    assert [r["status"] for r in duck["results"]] == ["fail", "fail", "fail"]


def test_a_malformed_line_errors_the_rules_of_its_log_on_duckdb(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(RULES)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "access_requests.ndjson").write_text('{"created_at": "2026-11-20T11:00:00Z"}\n{oops\n')
    write_ndjson(tmp_path / "data" / "scim_updates.ndjson", [])
    document = _run("rules", "--at", "2026-11-20T12:00:00Z", "--data", "data", "--engine", "duckdb", *SCIM_COVERS,
                    cwd=tmp_path)
    statuses = {r["id"]: (r["status"], r["message"]) for r in document["results"]}
    assert statuses["denied-burst"][0] == "error"
    # The file and line the Python engine names (DuckDB's own message counts lines differently).
    assert statuses["denied-burst"][1].startswith("data error, rule not evaluated: data/access_requests.ndjson:2: ")
    python = _run("rules", "--at", "2026-11-20T12:00:00Z", "--data", "data", "--engine", "python", *SCIM_COVERS,
                  cwd=tmp_path)
    assert statuses["denied-burst"][1] == {r["id"]: r["message"] for r in python["results"]}["denied-burst"]
    assert statuses["scim-heartbeat"][0] == "fail"  # the other log is still decided


def test_a_record_without_a_valid_time_errors_its_rules_on_duckdb(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(RULES)
    write_ndjson(tmp_path / "data" / "access_requests.ndjson", [{"created_at": "2026-11-20 11:00:00"}])
    write_ndjson(tmp_path / "data" / "scim_updates.ndjson", [])
    document = _run("rules", "--at", "2026-11-20T12:00:00Z", "--data", "data", "--engine", "duckdb", cwd=tmp_path)
    python = _run("rules", "--at", "2026-11-20T12:00:00Z", "--data", "data", "--engine", "python", cwd=tmp_path)
    message = document["results"][0]["message"]
    assert "data/access_requests.ndjson:1: " in message  # located as the Python engine locates it
    assert message == python["results"][0]["message"]


def _mistyped_records() -> list[dict]:
    """Sign-ins on 2026-11-14 with values of the wrong type, missing and null fields among good ones."""
    odd = [{"allowed": "yes"}, {"allowed": "false"}, {"allowed": 0}, {"user_email": 5}, {"user_email": None},
           {"user_email": "<absent>"}, {"ip_address": 167772161}, {"ip_address": ["10.0.0.1"]},
           {"country": None}, {"country": 7}, {"app_domain": {"host": "admin.example.com"}}, {}]
    records = []
    for i in range(48):
        record = {"created_at": f"2026-11-14T{i % 24:02d}:{i:02d}:00Z", "ray_id": f"r{i}", "action": "login",
                  "allowed": i % 3 != 0, "app_domain": "admin.example.com", "app_uid": "u", "connection": "okta",
                  "country": "RU" if i % 5 == 0 else "US", "ip_address": f"192.0.2.{i % 4}",
                  "user_email": ["breakglass@example.com", "ann@example.com", "ops@svc.example.com"][i % 3],
                  **odd[i % len(odd)]}
        records.append({k: v for k, v in record.items() if v != "<absent>"})
    return records


def test_values_of_the_wrong_type_are_decided_and_warned_alike_on_duckdb(tmp_path, monkeypatch):
    from auditor.sources.lake import write_from_files

    monkeypatch.chdir(REPO)
    data = tmp_path / "data"
    write_ndjson(data / "access_requests.ndjson", _mistyped_records())
    write_ndjson(data / "scim_updates.ndjson", [{"logged_at": "2026-11-14T10:00:00Z", "status": "SUCCESS",
                                                  "idp_id": "4f6c1a2e-8b3d-4e5f-9a7b-0c1d2e3f4a5b"}])
    write_from_files(tmp_path / "lake", {"access_requests": [data / "access_requests.ndjson"],
                                         "scim_updates": [data / "scim_updates.ndjson"]})
    args = ["--at", "2026-11-15T00:00:00Z", "--data-covers", SAMPLE_COVERS]
    python = _run("--data", str(data), *args, cwd=tmp_path)
    duck = _run("--data", str(data), *args, "--engine", "duckdb", cwd=tmp_path)
    assert duck == python
    warned = [w for w in python["warnings"] if w.startswith("access_requests: ") and "not a" in w]
    assert [w.split(" with ")[1].split(",")[0] for w in warned] == [
        "allowed not a boolean", "app_domain not a string", "country not a string", "ip_address not a string",
        "user_email not a string"]
    assert f"{data / 'access_requests.ndjson'}:1: a string ('yes')" in warned[0]
    assert "first at" in warned[4] and ": a number (5)" in warned[4]
    # A lake keeps them: both engines over it decide and warn as over the export (the lake is its origin).
    lake_python = _run("--data", str(tmp_path / "lake"), *args, "--engine", "python", cwd=tmp_path)
    lake_duck = _run("--data", str(tmp_path / "lake"), *args, cwd=tmp_path)
    assert lake_duck == lake_python
    assert [(r["status"], r["message"], r["evidence"]) for r in lake_duck["results"]] == \
        [(r["status"], r["message"], r["evidence"]) for r in python["results"]]
    assert [w.replace(str(tmp_path / "lake"), "X") for w in lake_duck["warnings"]
            if w.startswith("access_requests: ") and "not a" in w] == \
        [w.split(" first at ")[0] + " first at X: " + w.split(": ", 2)[2] for w in warned]


def narrowing_case(tmp_path: Path) -> tuple[Any, Any]:
    """A correlation rule's plan, and a DuckDB connection holding its logs: one `then` record that matches, three
    that cannot (not allowed, before the `first` record, no partner)."""
    import duckdb

    from auditor.compile.plan import Plan
    from auditor.evaluate.sql.query import table_name
    from auditor.sources.relation import json_relation
    from tests.helpers import access, compiled, scim

    plan: Plan = compiled(tmp_path, """
rules:
  - id: deprovisioned-signs-in
    title: t
    source: correlation
    window: 7d
    correlate:
      first: {source: scim_updates, filter: {request_method: DELETE, idp_id: idp-1}}
      then: {source: access_requests, filter: {allowed: true}}
      join: {resource_user_email: user_email}
    group_by: user_email
""", at="2026-11-15T00:00:00Z")
    logs = {
        "scim_updates": [scim(request_method="DELETE", resource_user_email="gone@example.com",
                              logged_at="2026-11-10T00:00:00Z")],
        "access_requests": [
            access(user_email="gone@example.com", allowed=True, created_at="2026-11-11T00:00:00Z"),  # matches
            access(user_email="gone@example.com", allowed=False, created_at="2026-11-11T00:00:01Z"),  # not allowed
            access(user_email="gone@example.com", allowed=True, created_at="2026-11-09T00:00:00Z"),  # before
            access(user_email="stays@example.com", allowed=True, created_at="2026-11-11T00:00:00Z"),  # no partner
        ],
    }
    con = duckdb.connect(":memory:")
    for name, records in logs.items():
        path = write_ndjson(tmp_path / f"{name}.ndjson", records)
        con.execute(f"CREATE TABLE {table_name(name)} AS {json_relation([path], name)}")
    return plan, con


def assert_narrowed(plan: Any, tables: Any) -> None:
    """The `then` log read through the table source is the one record that can match, with only the columns the
    rule reads or shows; the `first` log is read whole."""
    from auditor.run.tables import TableSource

    fetch = next(f for f in plan.fetches if f.source == "access_requests")
    [part] = TableSource(tables, plan.rules, {}).read(fetch, 0)
    rows = list(part.records)
    assert [(r["user_email"], r["allowed"]) for _, r in rows] == [("gone@example.com", True)]
    shown = set(rows[0][1])
    assert "user_email" in shown and "ray_id" in shown  # read and shown (evidence)
    assert "user_agent" not in shown  # neither read nor shown: not fetched
    scim_fetch = next(f for f in plan.fetches if f.source == "scim_updates")
    [first] = TableSource(tables, plan.rules, {}).read(scim_fetch, 0)
    assert len(list(first.records)) == 1  # the `first` log is read whole


def test_a_correlation_reads_only_the_then_rows_and_columns_that_can_matter_on_duckdb(tmp_path):
    """The `then` log is narrowed in SQL by the join, the window and the `then` side's exact conditions, and only
    the columns the rule reads or shows are fetched; the outcome is the Python engine's."""
    from auditor.run.tables import DuckTables

    plan, con = narrowing_case(tmp_path)
    assert_narrowed(plan, DuckTables(con))
