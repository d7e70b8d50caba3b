"""Periodic audits from the command line: `run --period` over the sample data equals one `run --at T_i` per
step, one fetch per source for the whole period (plan JSON and the emulator's request log), the retention
warning, `plan`/`report --period`, saved periodic plans, and the reports' step marks, rows and lists."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from auditor.load.schema import validator
from auditor.report.render import render
from tests.helpers import SAMPLE_COVERS, access, scim
from tests.integration.test_api_source import (
    ACCOUNT,
    TOKEN,
    cli,
    comparable,
    load,
    rule,
    token_env,
    write_data,
    write_rules,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "data"
SAMPLE_PERIOD = "2026-11-01T00:00:00Z/2026-11-15T00:00:00Z"
PERIOD = "2026-11-01T00:00:00Z/2026-11-08T00:00:00Z"
CONFIG = "scim_idp_ids: [idp-1, idp-2]\n"
# The test data holds every record from before the first step's longest window (7d) to the period's end.
COVERS = "2026-10-25T00:00:00Z/2026-11-08T00:00:00Z"
# One unfiltered 7-day rule makes the access log's widest fetch, which serves every other access rule;
# nested SCIM fetches over the same IdPs merge. So the plan has one fetch per source.
RULES = [
    rule("volume", window="7d", expect={"count": {"max": 60}}),  # 12 sign-ins a day: fails from day 5 on
    rule("denied", filter={"allowed": False}, group_by="user_email", expect={"count": {"max": 2}}),
    rule("countries", window="2d", filter={"country": {"not_in": ["DE", "US"]}}, group_by="user_email"),
    rule("heartbeat", "scim_updates", group_by="idp_id", for_each={"idp_id": ["idp-1", "idp-2"]},
         expect={"count": {"min": 1}}),
    rule("scim-failures", "scim_updates", window="3d", filter={"status": "FAILURE"}, expect={"count": {"max": 1}}),
]




def hours(h: float) -> str:
    from auditor.core.timeutil import format_time, parse_time

    return format_time(parse_time("2026-11-01T00:00:00Z") + int(h * 3600 * 1_000_000))


def week_of_records() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    signins = [access(created_at=hours(h + 0.5), allowed=h % 9 != 0, user_email=f"u{h % 4}@example.com",
                      country=("DE", "US", "FR")[h % 3] if h % 13 else "RU", ray_id=f"r{h:04d}")
               for h in range(0, 7 * 24, 2)]
    signins += [access(created_at=hours(80 + k / 10), allowed=False, user_email="mallory@example.com")
                for k in range(4)]
    scims = [scim(logged_at=hours(h), idp_id="idp-1" if h < 90 else "idp-2", status="FAILURE" if h % 5 == 0 else
                  "SUCCESS") for h in range(3, 7 * 24, 6)]
    return signins, scims


@pytest.fixture
def project(tmp_path: Path) -> Path:
    signins, scims = week_of_records()
    write_data(tmp_path / "data", signins, scims)
    return write_rules(tmp_path, RULES, CONFIG)


def files(root: Path) -> list[str]:
    """`--data` with the test data, and what it covers."""
    return ["--data", str(root / "data"), "--data-covers", COVERS]


def base_args(root: Path, command: str = "run") -> list[str]:
    return [command, str(root / "rules"), "--config", str(root / "auditor.yaml")]


def step_marks(document: dict[str, Any]) -> dict[str, str]:
    return {r["id"]: "".join({"pass": ".", "fail": "x", "waived": "w", "error": "!"}[s["status"]]
                             for s in r["timeline"]) for r in document["results"]}


# ---- equality with single runs over the sample data ---------------------------------------------------------


@pytest.fixture(scope="module")
def sample_periodic(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("sample")
    (root / "rules").symlink_to(REPO / "rules")
    (root / "auditor.yaml").write_text((REPO / "auditor.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (root / "waivers.yaml").symlink_to(REPO / "waivers.yaml")
    done = cli([*base_args(root), "--data", str(SAMPLE), "--data-covers", SAMPLE_COVERS, "--period", SAMPLE_PERIOD,
                "--quiet", "--results", str(root / "periodic.json")])
    assert done.exit_code == 2, done.output  # windows longer than a day reach before the sample's first day
    singles = {}
    for step in load(root / "periodic.json")["results"][0]["timeline"]:
        out = root / f"single-{step['at'][:10]}.json"
        one = cli([*base_args(root), "--data", str(SAMPLE), "--data-covers", SAMPLE_COVERS, "--at", step["at"],
                   "--quiet", "--results", str(out)])
        assert one.exit_code in (0, 1, 2), one.output
        singles[step["at"]] = load(out)
    return {"periodic": load(root / "periodic.json"), "singles": singles}


@pytest.mark.skipif(not (SAMPLE / "access_requests.ndjson.gz").exists(), reason="sample data not generated")
def test_sample_period_equals_a_run_at_each_step(sample_periodic):
    document, singles = sample_periodic["periodic"], sample_periodic["singles"]
    assert document["period"]["steps"] == len(singles) == 14
    assert document["reference_time"] == "2026-11-15T00:00:00Z"
    compared = 0
    for i, (t, single) in enumerate(singles.items()):
        for result, alone in zip(document["results"], single["results"], strict=True):
            step = result["timeline"][i]
            assert step["at"] == t
            assert (step["status"], step["violations"]) == (alone["status"], alone["violations"]), (result["id"], t)
            compared += 1
    assert compared == 14 * len(document["results"])
    # The rule's status is its worst step; a passing rule passed at every step.
    rank = {"pass": 0, "waived": 1, "fail": 2, "error": 3}
    for result in document["results"]:
        assert result["status"] == max((s["status"] for s in result["timeline"]), key=rank.__getitem__)
    marks = step_marks(document)
    # Used on day 9, in the 14-day window after; before, the window reaches back before the sample's first day,
    # so nothing says whether it was used then (no data).
    assert marks["breakglass-account-used"] == "!!!!!!!!xxxxxx"
    assert all(s.get("reason") == "no_data" for r in document["results"] for s in r["timeline"]
               if s["status"] == "error")
    assert set(marks["access-records-have-country"]) == {"."}
    assert not list(validator("results").iter_errors(document))


# ---- one fetch per source ------------------------------------------------------------------------------------


def test_plan_shows_the_period_and_one_fetch_per_source(project):
    done = cli([*base_args(project, "plan"), "--period", PERIOD, "--json"])
    assert done.exit_code == 0, done.output
    plan = json.loads(done.stdout)
    assert plan["period"]["steps"] == 7 and plan["reference_time"] == "2026-11-08T00:00:00Z"
    assert sorted(f["source"] for f in plan["fetches"]) == ["access_requests", "scim_updates"]
    access_fetch = next(f for f in plan["fetches"] if f["source"] == "access_requests")
    query = parse_qs(access_fetch["query"])
    # The period plus the longest window before its first step (7d), padded one second each side.
    assert (query["since"], query["until"]) == (["2026-10-25T23:59:59Z"], ["2026-11-08T00:00:01Z"])
    # Over the API the first window (from 2026-10-25) is beyond the 30 days the API keeps.
    assert "warning: over the API, period " in done.stderr and "keeps only 30 days" in done.stderr
    text = cli([*base_args(project, "plan"), "--period", PERIOD]).stdout
    assert text.splitlines()[0].startswith(f"Plan for period {PERIOD} (UTC): 7 steps of 1d at "
                                           "2026-11-02T00:00:00Z .. 2026-11-08T00:00:00Z; 5 rules, 2 fetches")


def test_the_emulator_is_asked_once_per_source_for_the_whole_period(project, emulator, clock):
    emu = emulator(project / "data", account_id=ACCOUNT, token=TOKEN)
    over_api = cli([*base_args(project), "--period", PERIOD, "--api-base", emu.base_url, "--account-id", ACCOUNT,
                    "--no-progress", "--quiet", "--results", str(project / "api.json")], env=token_env())
    assert over_api.exit_code == 1, over_api.output
    asked: dict[str, set[tuple[str, str]]] = {}
    for request in emu.requests:
        query = parse_qs(request.query)
        source = "scim_updates" if "scim" in request.path else "access_requests"
        asked.setdefault(source, set()).add((query["since"][0], query["until"][0]))
    assert asked == {"access_requests": {("2026-10-25T23:59:59Z", "2026-11-08T00:00:01Z")},
                     "scim_updates": {("2026-10-29T23:59:59Z", "2026-11-08T00:00:01Z")}}
    api_doc = load(project / "api.json")
    # A page or two per fetch (the last one empty), not a fetch per step and source (7 x 2).
    assert api_doc["summary"]["api_requests"] == len(emu.requests) <= 6
    # Same answer as from the files.
    over_files = cli([*base_args(project), "--period", PERIOD, "--data", str(project / "data"), "--account-id", ACCOUNT,
                      "--data-covers", COVERS, "--quiet", "--results", str(project / "files.json")])
    files_doc = load(project / "files.json")
    assert over_files.exit_code == 1
    # "Now" is pinned to 2026-11-16 (tests/conftest.py): the API's 30 days reach back over the whole period.
    assert not [w for w in api_doc["warnings"] + files_doc["warnings"] if "the API keeps" in w]
    assert "warning: " not in over_api.stderr
    assert comparable(api_doc) == comparable(files_doc)
    assert step_marks(files_doc) == {"volume": "....xxx", "denied": "...x...", "countries": "xxxxxxx",
                                     "heartbeat": "xxx.xxx", "scim-failures": ".xxxxxx"}


def test_a_period_before_the_retention_is_warned_once_per_rule_and_retention_days_silences_it(project, emulator,
                                                                                                  clock):
    emu = emulator(project / "data", account_id=ACCOUNT, token=TOKEN)
    args = [*base_args(project), "--period", PERIOD, "--api-base", emu.base_url, "--account-id", ACCOUNT,
            "--no-progress", "--quiet", "--results", str(project / "api.json")]
    # Now is 2026-11-16: 10 days of logs reach back to 2026-11-06, after the period's first windows start.
    (project / "auditor.yaml").write_text(CONFIG + "retention_days: 10\n", encoding="utf-8")
    done = cli(args, env=token_env())
    assert done.exit_code == 2, done.output
    said = [w for w in load(project / "api.json")["warnings"] if "before the 10 days the API keeps" in w]
    assert sorted(w.split(":")[0] for w in said) == ["countries", "denied", "heartbeat", "scim-failures", "volume"]
    # Once each: on stderr before the requests (not again at the end), and no second, period-wide warning.
    assert all(done.stderr.count(w) == 1 and "--data" in w for w in said)
    assert done.stderr.count("warning: ") == len(said)
    (project / "auditor.yaml").write_text(CONFIG + "retention_days: 100000\n", encoding="utf-8")
    done = cli(args, env=token_env())
    assert done.exit_code == 1, done.output
    assert not [w for w in load(project / "api.json")["warnings"] if "API keeps" in w]
    assert "warning: " not in done.stderr


# ---- usage ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "message"), [
    (["--period", PERIOD, "--at", "2026-11-05T00:00:00Z"], "--at cannot be combined with --period"),
    (["--tz", "Europe/Berlin"], "--tz only applies with --period"),
    (["--step", "6h", "--tz", "UTC"], "--tz and --step only apply with --period"),
    (["--period", "2026-Q5"], "use 2026-11, 2026-Q4"),
    (["--period", "2026-11", "--tz", "Mars/Base"], "not an IANA time zone"),
])
def test_usage_errors_are_one_line_exit_2(project, extra, message):
    for command in ("run", "plan"):
        done = cli([*base_args(project, command), "--data" if command == "run" else "--json",
                    *([str(project / "data")] if command == "run" else []), *extra])
        assert done.exit_code == 2, done.output
        assert done.stderr.strip().splitlines() == [f"error: {done.stderr.strip().removeprefix('error: ')}"]
        assert message in done.stderr


def test_report_period_checks_the_results_are_of_that_period(project):
    cli([*base_args(project), "--period", PERIOD, *files(project), "--quiet",
         "--results", str(project / "p.json")])
    results = str(project / "p.json")
    assert cli(["report", results, "--period", PERIOD]).exit_code == 0
    other = cli(["report", results, "--period", PERIOD, "--step", "12h"])
    assert other.exit_code == 2 and "the results cover period" in other.stderr and "not " + PERIOD in other.stderr
    cli([*base_args(project), "--at", "2026-11-08T00:00:00Z", *files(project), "--quiet",
         "--results", str(project / "one.json")])
    single = cli(["report", str(project / "one.json"), "--period", PERIOD])
    assert single.exit_code == 2 and "single run" in single.stderr


def test_a_saved_periodic_plan_runs_the_same_steps(project):
    assert cli([*base_args(project, "plan"), "--period", PERIOD, "-o", str(project / "plan.json")]).exit_code == 0
    done = cli(["run", "--plan", str(project / "plan.json"), "--config", str(project / "auditor.yaml"),
                *files(project), "--quiet", "--results", str(project / "saved.json")])
    assert done.exit_code == 1, done.output
    assert load(project / "saved.json")["period"]["label"] == PERIOD
    again = cli(["run", "--plan", str(project / "plan.json"), "--period", PERIOD, "--data", str(project / "data")])
    assert again.exit_code == 2 and "--period cannot be combined with --plan" in again.stderr


# ---- reports ---------------------------------------------------------------------------------------------------


@pytest.fixture
def periodic_results(project) -> dict[str, Any]:
    done = cli([*base_args(project), "--period", PERIOD, *files(project), "--quiet",
                "--results", str(project / "p.json")])
    assert done.exit_code == 1, done.output
    return load(project / "p.json")


def test_markdown_has_a_line_of_step_marks_per_rule(periodic_results):
    text = render(periodic_results, "markdown")
    assert f"**Period {PERIOD}** (UTC): 7 steps of 1d" in text
    assert "| ❌ **denied** | `...x...` | 1 of 7 |" in text
    assert "| ✅ **volume** |" not in text and "| ❌ **volume** | `....xxx` | 3 of 7 |" in text
    assert "**Failing steps:** 2026-11-05T00:00:00Z (1 group). Groups below are those of the worst step." in text


def test_csv_has_one_row_per_rule_and_step(periodic_results):
    rows = list(csv.DictReader(io.StringIO(render(periodic_results, "csv"))))
    assert len(rows) == 5 * 7
    denied = [r for r in rows if r["rule"] == "denied"]
    assert [r["step"] for r in denied] == [str(i) for i in range(1, 8)]
    assert [(r["at"], r["status"], r["violations"]) for r in denied][3] == ("2026-11-05T00:00:00Z", "fail", "1")
    assert {r["rule_status"] for r in denied} == {"fail"}


def test_junit_and_sarif_list_the_failing_steps_per_rule(periodic_results):
    root = ET.fromstring(render(periodic_results, "junit").encode("utf-8"))
    cases = {c.get("name").split(":")[0]: c for c in root.iter("testcase")}
    assert len(cases) == 5
    failure = cases["volume"].find("failure")
    assert "failed at 3 of 7 steps" in failure.get("message")
    assert "failing steps: 2026-11-06T00:00:00Z (1 group), 2026-11-07T00:00:00Z (1 group), " in failure.text
    sarif = json.loads(render(periodic_results, "sarif"))
    result = next(r for r in sarif["runs"][0]["results"] if r["ruleId"] == "denied")
    assert result["message"]["text"].endswith("Failing steps: 2026-11-05T00:00:00Z (1 group)")
    assert result["properties"]["failing_steps"] == [{"at": "2026-11-05T00:00:00Z", "status": "fail",
                                                      "violations": 1}]


def test_text_and_html_show_the_period(periodic_results):
    text = render(periodic_results, "text")
    assert f"period {PERIOD} (UTC) · 7 steps of 1d" in text
    assert "failed at 1 of 7 steps" in text
    html = render(periodic_results, "html")
    root = ET.fromstring(html.encode("utf-8"))
    titles = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert "denied · 2026-11-05T00:00:00Z · fail · 1 violating groups" in titles
    assert f"Audit report · period {PERIOD} (UTC)" in html
