"""`run --data` over the Logpush layout: same results as the same records as NDJSON, pruning, coverage, names."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from auditor.cli import app
from auditor.core.fields import LOGPUSH_NAMES
from auditor.core.timeutil import format_time, parse_epoch, parse_time
from tests.helpers import access, scim, write, write_ndjson

AT = "2026-11-20T12:00:00Z"
RULES = yaml.safe_dump({"rules": [
    {"id": "denied-burst", "title": "No user denied more than once in 3 hours", "severity": "high",
     "source": "access_requests", "window": "3h", "filter": {"allowed": False}, "group_by": "user_email",
     "expect": {"count": {"max": 1}}},
    {"id": "office-share", "title": "Most sign-ins from the office", "severity": "low",
     "source": "access_requests", "window": "3h",
     "expect": {"ratio": {"where": {"ip_address": {"cidr": "10.0.0.0/8"}}, "min": 0.6}}},
    {"id": "scim-heartbeat", "title": "SCIM ran", "severity": "low", "source": "scim_updates", "window": "1d",
     "filter": {"idp_id": "idp-1"},
     "expect": {"count": {"min": 1}}},
]}, sort_keys=False)
_TO_LOGPUSH = {v: k for k, v in LOGPUSH_NAMES.items()}


def _records() -> list[dict]:
    out = []
    for minute in range(0, 180, 7):  # 09:00..11:59, every 7 minutes
        t = parse_time("2026-11-20T09:00:00Z") + minute * 60_000_000 + 123_456
        out.append(access(created_at=format_time(t), allowed=minute % 3 != 0,
                          user_email=f"u{minute % 4}@example.com", ip_address=f"10.0.0.{minute % 250}"
                          if minute % 2 else "2001:db8::1"))
    return out


def _stamp(text: str) -> str:
    return text.replace("-", "").replace(":", "")[:15] + "Z"


def _as_logpush(record: dict, fmt: str) -> dict:
    out = {_TO_LOGPUSH.get(k, k): v for k, v in record.items()}
    t = parse_time(record["created_at"])
    forms = {"unixnano": t * 1000, "unix": t // 1_000_000, "rfc3339": format_time(t // 1_000_000 * 1_000_000),
             "rfc3339ms": format_time(t // 1000 * 1000), "rfc3339ns": record["created_at"][:-1] + "000Z"}
    out["CreatedAt"] = forms[fmt]
    return out


def _logpush_folder(root: Path, records: list[dict], fmt: str, *, skip_hour: int | None = None) -> None:
    """Five-minute batches from 09:00 to 12:00, each named by its range, in its {DATE} folder."""
    start = parse_time("2026-11-20T09:00:00Z")
    for i in range(36):
        lo, hi = start + i * 300_000_000, start + (i + 1) * 300_000_000
        if skip_hour is not None and (lo - start) // 3_600_000_000 == skip_hour:
            continue
        batch = [r for r in records if lo <= parse_time(r["created_at"]) < hi]
        name = f"{_stamp(format_time(lo))}_{_stamp(format_time(hi))}_{i:08x}.log.gz"
        path = root / "20261120" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt") as f:
            f.writelines(json.dumps(_as_logpush(r, fmt)) + "\n" for r in batch)


# What plain files of the test records cover (Logpush object names say it themselves): 09:00 to 12:00.
PLAIN_COVERS = ("--data-covers", "access_requests=2026-11-20T09:00:00Z/2026-11-20T12:00:00Z")


def _run(tmp_path: Path, *data: str, covers: tuple[str, ...] = ()) -> dict:
    out = tmp_path / "results.json"
    result = CliRunner().invoke(app.cli, ["run", str(tmp_path / "rules"), "--at", AT, "--quiet", "--results", str(out),
                                       *(x for d in data for x in ("--data", d)), *covers])
    assert result.exit_code in (0, 1, 2), result.output
    document = json.loads(out.read_text())
    document["summary"].pop("duration_s")
    # Which files were read (provenance, each result's fetch) differs by layout by design; nothing else may.
    document["provenance"].pop("files")
    for r in document["results"]:
        assert r.pop("fetch").startswith("files ")
    return document


def _answers(document: dict) -> dict:
    """The document without what says how coverage was known (Logpush names, or stated for plain files)."""
    out = json.loads(json.dumps(document))
    out.pop("coverage", None)
    for r in out["results"]:
        r.pop("coverage", None)
    return out


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "rules" / "rules.yaml", RULES)
    return tmp_path


@pytest.mark.parametrize("fmt", ["unixnano", "unix", "rfc3339", "rfc3339ms", "rfc3339ns"])
def test_a_logpush_folder_gives_the_results_of_the_same_records_as_ndjson(project, fmt):
    records = _records()
    # The same instants as NDJSON, with the time text a reader makes of each format (epochs as RFC 3339).
    same = []
    for r in records:
        stamp = _as_logpush(r, fmt)["CreatedAt"]
        same.append({**r, "created_at": stamp if isinstance(stamp, str) else format_time(parse_epoch(stamp))})
    write_ndjson(project / "plain" / "access_requests.ndjson", same)
    write_ndjson(project / "plain" / "scim_updates.ndjson", [scim(logged_at="2026-11-20T10:00:00Z")])
    write_ndjson(project / "mixed" / "scim_updates.ndjson", [scim(logged_at="2026-11-20T10:00:00Z")])
    _logpush_folder(project / "mixed" / "access_requests", records, fmt)
    plain, mixed = _run(project, "plain", covers=PLAIN_COVERS), _run(project, "mixed")
    assert _answers(mixed) == _answers(plain)
    assert [log["basis"] for log in mixed["results"][0]["coverage"]["logs"]] == ["logpush"]
    assert [r["status"] for r in mixed["results"]] == ["fail", "fail", "pass"]


def test_data_log_equals_path_names_a_logpush_folder(project):
    _logpush_folder(project / "bucket" / "logs", _records(), "unixnano")
    write_ndjson(project / "scim.ndjson", [scim(logged_at="2026-11-20T10:00:00Z")])
    write_ndjson(project / "plain" / "access_requests.ndjson", _records())
    write_ndjson(project / "plain" / "scim_updates.ndjson", [scim(logged_at="2026-11-20T10:00:00Z")])
    named = _run(project, "access_requests=bucket/logs", "scim_updates=scim.ndjson")
    assert _answers(named)["results"] == _answers(_run(project, "plain", covers=PLAIN_COVERS))["results"]


def test_a_missing_hour_of_objects_is_reported_as_a_gap(project):
    _logpush_folder(project / "lp", _records(), "rfc3339", skip_hour=1)
    document = _run(project, "access_requests=lp")
    assert "denied-burst: no access_requests Logpush object covers 2026-11-20T10:00:00Z..2026-11-20T11:00:00Z" \
        in document["warnings"]


def test_records_outside_their_batch_are_counted_and_kept(project):
    records = _records()
    _logpush_folder(project / "lp", records, "rfc3339ns")
    first = sorted((project / "lp" / "20261120").iterdir())[0]
    with gzip.open(first, "at") as f:  # a record of 11:59 in the 09:00 batch
        f.write(json.dumps(_as_logpush(access(created_at="2026-11-20T11:59:00Z", allowed=False,
                                              user_email="late@example.com"), "rfc3339")) + "\n")
    document = _run(project, "access_requests=lp")
    assert f"{first.relative_to(project)}: 1 record outside the batch's time range in its name (kept and evaluated; " \
           "the name's coverage may be wrong)" in document["warnings"]
    assert document["summary"]["records_fetched"] == len(records) + 1


def test_objects_outside_every_window_are_not_opened(project):
    _logpush_folder(project / "lp", _records(), "unix")
    old = project / "lp" / "20261101" / "20261101T000000Z_20261101T000500Z_deadbeef.log.gz"
    old.parent.mkdir()
    old.write_bytes(b"not gzip at all")  # would be a data error if it were read
    document = _run(project, "access_requests=lp")
    assert [r["status"] for r in document["results"] if r["source"] == "access_requests"] == ["fail", "fail"]


def test_a_stray_file_in_a_date_folder_errors_the_rules_naming_it(project):
    _logpush_folder(project / "lp", _records(), "unix")
    (project / "lp" / "20261120" / "notes.txt").write_text("x")
    out = project / "r.json"
    result = CliRunner().invoke(app.cli, ["run", "rules", "--at", AT, "--quiet", "--results", str(out),
                                       "--data", "access_requests=lp", "--rule", "denied-burst"])
    assert result.exit_code == 2
    message = json.loads(out.read_text())["results"][0]["message"]
    assert "notes.txt: error: not a Logpush batch object name" in message
