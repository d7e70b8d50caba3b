"""Records kept in Logpush's names until a rule reads them (auditor.sources.records.LogpushNames): a run over
Logpush NDJSON answers exactly as over the same records API-shaped, hostile records included (wrong-typed,
missing and unknown fields, a record holding a field under both names), in one process and split between two;
a bad CreatedAt is named at its file and line."""

from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from auditor.core.fields import ACCESS_REQUESTS, LOGPUSH_NAMES
from auditor.core.timeutil import format_time, parse_time
from auditor.evaluate import parallel
from auditor.sources.base import DataError
from auditor.sources.records import LogpushNames, Normalizer
from tests.helpers import SAMPLE_COVERS

REPO = Path(__file__).resolve().parents[2]
AT = "2026-11-15T00:00:00Z"
TO_LOGPUSH = {v: k for k, v in LOGPUSH_NAMES.items()}
pytestmark = pytest.mark.forks  # one test forks a helper: run before Spark starts (tests/conftest.py)


def _sample() -> list[dict]:
    with gzip.open(REPO / "examples" / "data" / "access_requests.ndjson.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _hostile(records: list[dict]) -> list[dict]:
    """The sample with odd records spread through it: each an API-shaped record whose Logpush twin is odd alike."""
    out = list(records)
    for n, i in enumerate(range(0, len(out), max(1, len(out) // 12))):
        r = dict(out[i])
        kind = n % 5
        if kind == 0:
            r["allowed"] = "false"  # wrong type: counted, never matches
        elif kind == 1:
            r.pop("user_email")  # missing: counted
            r["country"] = "de"  # read upper case
        elif kind == 2:
            r["user_email"] = 5
            r["device_posture"] = {"os": "linux"}  # unknown fields keep their names
        elif kind == 3:
            r["allowed"] = None  # null: a value, not counted
        else:
            r.pop("country")  # optional
        out[i] = r
    return out


def _write(folder: Path, records: list[dict], shape: str) -> None:
    folder.mkdir(parents=True)
    lines = []
    for r in records:
        t_us = parse_time(r["created_at"])
        if shape == "logpush":
            r = {TO_LOGPUSH.get(k, k): v for k, v in r.items()}
            r["CreatedAt"] = t_us * 1000  # epoch nanoseconds, Logpush's default
        else:
            r = {**r, "created_at": format_time(t_us)}  # the text a reader makes of an epoch (no `.000000`)
        lines.append(json.dumps(r) + "\n")
    (folder / "access_requests.ndjson").write_text("".join(lines), encoding="utf-8")
    shutil.copy(REPO / "examples" / "data" / "scim_updates.json", folder / "scim_updates.json")


def _run(data: Path) -> dict:
    results = data.parent / f"{data.name}.json"
    result = CliRunner().invoke(cli, ["run", str(REPO / "rules"), "--config", str(REPO / "auditor.yaml"), "--data",
                                       str(data), "--data-covers", SAMPLE_COVERS, "--at", AT, "--engine", "python",
                                       "--quiet", "--no-progress", "--results", str(results)], catch_exceptions=False)
    assert result.exit_code in (0, 1, 2), result.output
    document = json.loads(results.read_text().replace(str(data), "DATA"))
    document["summary"].pop("duration_s")
    document["provenance"].pop("files")  # the files' bytes differ by design
    return document


@pytest.fixture
def shapes(tmp_path) -> tuple[Path, Path]:
    records = _hostile(_sample())
    _write(tmp_path / "api", records, "api")
    _write(tmp_path / "logpush", records, "logpush")
    return tmp_path / "api", tmp_path / "logpush"


def test_logpush_ndjson_answers_as_the_same_records_api_shaped(shapes):
    api, logpush = _run(shapes[0]), _run(shapes[1])
    assert logpush == api
    warned = " ".join(api["warnings"])
    # The odd records were seen (and named at the same lines in both shapes: the documents are equal).
    assert "with allowed not a boolean" in warned and "with user_email not a string" in warned
    assert any(r["evidence"] for r in api["results"])  # evidence (with created_at as text) was compared too


def test_split_between_two_processes_answers_as_one(shapes, helped, monkeypatch):
    monkeypatch.setenv(parallel.ENV, "1")
    one = _run(shapes[1])
    monkeypatch.setenv(parallel.ENV, "2")
    assert _run(shapes[1]) == one
    assert max(helped) > 0  # the helper read blocks of the Logpush records


def test_a_record_holding_a_field_under_both_names_reads_as_renaming_makes_it(tmp_path):
    """`Allowed` and `allowed` in one record: renamed as read (the later wins), never read by one of its names."""
    base = {"Action": "login", "AppDomain": "a.example.com", "Connection": "okta", "IPAddress": "192.0.2.1",
            "RayID": "r1", "Email": "eve@example.com", "Country": "us", "CreatedAt": 1_794_000_000_000_000_000}
    normalize = Normalizer(ACCESS_REQUESTS, lambda line, message: DataError("x", line, message))
    assert normalize.logpush_time({**base, "Allowed": True, "allowed": "false"}, 1) is None
    t_us, renamed = normalize.from_logpush({**base, "Allowed": True, "allowed": "false"}, 1)
    assert renamed["allowed"] == "false" and t_us == 1_794_000_000_000_000
    plain = {**base, "Allowed": True}
    assert normalize.logpush_time(plain, 1) == t_us
    assert LogpushNames()(plain, t_us) == normalize.from_logpush(plain, 1)[1]
    assert LogpushNames()(plain, t_us)["created_at"] == format_time(t_us)


@pytest.mark.parametrize("stamp", [10**30, -(10**30), "1e400", True, None, "soon"])
def test_a_bad_created_at_is_named_at_its_line(tmp_path, stamp):
    base = {"Action": "login", "Allowed": True, "Email": "eve@example.com", "CreatedAt": 1_794_000_000_000_000_000}
    text = json.dumps(base) + "\n" + json.dumps({**base, "CreatedAt": stamp}).replace('"1e400"', "1e400") + "\n"
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "access_requests.ndjson").write_text(text)
    shutil.copy(REPO / "examples" / "data" / "scim_updates.json", folder / "scim_updates.json")
    document = _run(folder)
    errors = {r["message"] for r in document["results"] if r["status"] == "error"}
    assert errors and all("DATA/access_requests.ndjson:2: error: " in m for m in errors), errors


def test_times_are_written_as_format_time_writes_them():
    rng = random.Random(7)
    names = LogpushNames()
    first, end = -62_135_596_800_000_000, 253_402_300_800_000_000  # years 1 to 9999
    edges = [first, end - 1, 0, -1, 1, 86_400_000_000 - 1, -86_400_000_000, 1_794_000_000_000_000]
    spread = [rng.randrange(first, end) for _ in range(20_000)]
    in_order = sorted(rng.randrange(1_790_000_000, 1_800_000_000) * 1_000_000 + rng.choice((0, 5)) for _ in range(2000))
    for t_us in edges + spread + in_order:
        assert names.format(t_us) == format_time(t_us)
