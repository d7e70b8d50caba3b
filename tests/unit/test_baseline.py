"""Baselines: results marked new / still / fixed against an earlier run, and the --fail-on-new gate."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from auditor.cli import cli
from auditor.decide.baseline import BaselineError, load_baseline
from auditor.load.schema import validator
from tests.helpers import access, write, write_ndjson

AT = "2026-11-15T12:00:00Z"
RULES = yaml.safe_dump({"rules": [
    {"id": "denied-burst", "title": "No user denied more than twice", "source": "access_requests", "window": "1h",
     "filter": {"allowed": False}, "group_by": "user_email", "expect": {"count": {"max": 2}}},
    {"id": "foreign", "title": "No sign-in outside the US", "source": "access_requests", "window": "1h",
     "filter": {"country": {"exists": True, "neq": "US"}}},
    {"id": "quiet", "title": "Nothing from the test app", "source": "access_requests", "window": "1h",
     "filter": {"app_domain": "test.example.com"}},
]}, sort_keys=False)


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    write(tmp_path / "rules" / "r.yaml", RULES)


COVERS = "2026-11-14T00:00:00Z/2026-11-16T00:00:00Z"  # the data holds every record of the rules' windows


def denied(user: str, n: int = 3) -> list[dict]:
    return [access(allowed=False, user_email=user, country="US", created_at=f"2026-11-15T11:1{i}:00Z")
            for i in range(n)]


def run(tmp_path, records: list[dict], name: str, *extra: str):
    write_ndjson(tmp_path / "data" / "access_requests.ndjson", records)
    result = CliRunner().invoke(cli, ["run", "--data", "data", "--data-covers", COVERS, "--at", AT, "--quiet",
                                       "--results", name, *extra])
    return result, json.loads((tmp_path / name).read_text()) if (tmp_path / name).exists() else None


def marks(doc: dict) -> dict[str, str | None]:
    return {r["id"]: r["baseline"] for r in doc["results"]}


def test_new_still_fixed(tmp_path):
    before = [*denied("eve@example.com"), access(country="FR", created_at="2026-11-15T11:20:00Z")]
    _, base = run(tmp_path, before, "base.json")
    assert {r["id"]: r["status"] for r in base["results"]} == {"denied-burst": "fail", "foreign": "fail",
                                                              "quiet": "pass"}
    assert "baseline" not in base and "baseline" not in base["results"][0]  # only with --baseline

    now = [*denied("eve@example.com"),
           access(app_domain="test.example.com", country="US", created_at="2026-11-15T11:30:00Z")]
    result, doc = run(tmp_path, now, "now.json", "--baseline", "base.json")
    assert result.exit_code == 1
    assert marks(doc) == {"denied-burst": "still", "foreign": "fixed", "quiet": "new"}
    assert doc["baseline"] == {"reference_time": AT, "rules_sha256": base["provenance"]["rules_sha256"],
                               "new": ["quiet"], "still": ["denied-burst"], "fixed": ["foreign"]}
    assert list(validator("results").iter_errors(doc)) == []


def test_a_new_violating_group_of_a_failing_rule_is_new(tmp_path):
    run(tmp_path, denied("eve@example.com"), "base.json")
    _, doc = run(tmp_path, denied("eve@example.com") + denied("mallory@example.com"), "now.json",
                 "--baseline", "base.json")
    assert marks(doc)["denied-burst"] == "new"
    _, doc = run(tmp_path, denied("eve@example.com", 5), "again.json", "--baseline", "base.json")
    assert marks(doc)["denied-burst"] == "still"  # same group, more records: still the known finding


def test_fail_on_new_gates_only_new_failures(tmp_path):
    run(tmp_path, denied("eve@example.com"), "base.json")
    still, _ = run(tmp_path, denied("eve@example.com"), "a.json", "--baseline", "base.json", "--fail-on-new")
    assert still.exit_code == 0
    plain, _ = run(tmp_path, denied("eve@example.com"), "b.json", "--baseline", "base.json")
    assert plain.exit_code == 1  # without --fail-on-new every failure counts
    new, _ = run(tmp_path, [*denied("eve@example.com"), access(country="FR", created_at="2026-11-15T11:20:00Z")],
                 "c.json", "--baseline", "base.json", "--fail-on-new")
    assert new.exit_code == 1


def test_baseline_marks_in_every_report(tmp_path):
    run(tmp_path, denied("eve@example.com"), "base.json")
    write_ndjson(tmp_path / "data" / "access_requests.ndjson",
                 [*denied("eve@example.com"), access(country="FR", created_at="2026-11-15T11:20:00Z")])
    args = ["run", "--data", "data", "--data-covers", COVERS, "--at", AT, "--baseline", "base.json", "--quiet"]
    for fmt in ("text", "markdown", "html", "junit", "sarif", "csv"):
        args += ["--report", f"{fmt}=out/report.{fmt}"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    out = {fmt: (tmp_path / "out" / f"report.{fmt}").read_text() for fmt in ("text", "markdown", "html", "junit",
                                                                             "sarif", "csv")}
    assert "[new] count 1 > max 0" in out["text"] and "[still] count 3 > max 2" in out["text"]
    assert "1 new, 1 still, 0 fixed" in out["text"]
    assert "FAIL · 🆕 new" in out["markdown"] and "FAIL · still" in out["markdown"]
    assert '<span class="tag" title="against the baseline run">new</span>' in out["html"]
    assert 'message="[new] count 1 &gt; max 0"' in out["junit"]
    sarif = json.loads(out["sarif"])["runs"][0]["results"]
    assert {r["ruleId"]: r["baselineState"] for r in sarif} == {"denied-burst": "unchanged", "foreign": "new"}
    rows = [line.split(",") for line in out["csv"].splitlines()]
    column = rows[0].index("baseline")
    assert {row[0]: row[column] for row in rows[1:]} == {"denied-burst": "still", "foreign": "new", "quiet": ""}


def test_usage_errors(tmp_path):
    write_ndjson(tmp_path / "data" / "access_requests.ndjson", [])
    runner = CliRunner()
    result = runner.invoke(cli, ["run", "--data", "data", "--at", AT, "--fail-on-new"])
    assert result.exit_code == 2
    assert result.stderr == "error: --fail-on-new needs --baseline PREVIOUS.json (the run to compare with)\n"
    result = runner.invoke(cli, ["run", "--data", "data", "--at", AT, "--baseline", "nope.json"])
    assert (result.exit_code, result.stderr) == (2, "error: --baseline nope.json: file not found\n")


def test_load_baseline_rejects_what_is_not_a_results_document(tmp_path):
    (tmp_path / "x.json").write_text('{"version": 1}')
    with pytest.raises(BaselineError, match="not an auditor results document"):
        load_baseline(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{")
    with pytest.raises(BaselineError, match=r"y.json:1:2: not valid JSON"):
        load_baseline(tmp_path / "y.json")
