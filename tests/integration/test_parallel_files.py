"""Large exported logs use a second core (auditor.evaluate.parallel): a forked helper evaluates every rule over the
blocks of records it is handed, and its accumulators merge into the parent's. The answer must be exactly the
single-pass answer (evidence order, periodic timelines and correlation matches included), and any failure of
the helper must only cost time: the parent then reads the unit again alone."""

from __future__ import annotations

import gzip
import json
import os
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from auditor.evaluate import parallel
from auditor.run import unit
from tests.helpers import SAMPLE_COVERS

REPO = Path(__file__).resolve().parents[2]
AT = "2026-11-15T00:00:00Z"
pytestmark = pytest.mark.forks  # run before Spark starts (tests/conftest.py)

def _run(tmp_path: Path, name: str, data: Path = REPO / "examples" / "data",
         extra: list[str] | None = None) -> tuple[int, dict]:
    results = tmp_path / f"{name}.json"
    result = CliRunner().invoke(cli, ["run", str(REPO / "rules"), "--config", str(REPO / "auditor.yaml"), "--data",
                                       str(data), "--data-covers", SAMPLE_COVERS, *(extra or ["--at", AT]), "--quiet",
                                       "--no-progress", "--results", str(results)], catch_exceptions=False)
    assert "Traceback" not in result.output + result.stderr
    document = json.loads(results.read_text())
    document["summary"].pop("duration_s")
    return result.exit_code, document


def test_a_helper_gives_the_single_pass_answer(tmp_path, monkeypatch, helped):
    if parallel.context(0) is None:
        pytest.skip(f"cannot fork a helper here (one core, no fork, or threads: {threading.enumerate()})")
    code, with_helper = _run(tmp_path, "helped")
    assert helped and sum(helped) > 0, "no helper took a block"
    monkeypatch.setenv(parallel.ENV, "1")
    helped.clear()
    single_code, single = _run(tmp_path, "single")
    assert not helped
    assert (code, with_helper) == (single_code, single)


@pytest.mark.parametrize("failure", ["exception", "dies", "unpicklable"])
def test_a_failing_helper_costs_time_not_the_answer(tmp_path, monkeypatch, helped, failure):
    if parallel.context(0) is None:
        pytest.skip(f"cannot fork a helper here (one core, no fork, or threads: {threading.enumerate()})")
    expected = _run(tmp_path, "expected")
    original = unit._helper_pass

    def broken(unit, evaluators, windows, blocks):
        if failure == "exception":
            raise RuntimeError("helper broke")
        if failure == "dies":
            os._exit(3)
        return "ok", lambda: None  # cannot be pickled back to the parent

    monkeypatch.setattr(unit, "_helper_pass", broken)
    code, document = _run(tmp_path, "broken")
    # Same answer; the run says why the helper failed (it used to drop the reason).
    warnings = [w for w in document.pop("warnings") if w not in expected[1]["warnings"]]
    assert (code, document) == (expected[0], {k: v for k, v in expected[1].items() if k != "warnings"})
    why = {"exception": "raised RuntimeError('helper broke')", "dies": "exit code 3",
           "unpicklable": "ended without an answer"}[failure]
    assert warnings and all(why in w and "this process read its records instead" in w for w in warnings)
    monkeypatch.setattr(unit, "_helper_pass", original)


def test_a_data_error_errors_every_rule_of_the_unit_with_or_without_a_helper(tmp_path, monkeypatch, helped):
    if parallel.context(0) is None:
        pytest.skip(f"cannot fork a helper here (one core, no fork, or threads: {threading.enumerate()})")
    data = tmp_path / "data"
    data.mkdir()
    good = json.dumps({"created_at": "2026-11-14T10:00:00Z", "allowed": True, "user_email": "a@example.com"})
    (data / "access_requests.ndjson").write_text(f"{good}\n{{broken\n{good}\n")
    (data / "scim_updates.json").write_text((REPO / "examples" / "data" / "scim_updates.json").read_text())
    code, helped_doc = _run(tmp_path, "helped", data)
    monkeypatch.setenv(parallel.ENV, "1")
    assert (code, helped_doc) == _run(tmp_path, "single", data)
    assert code == 2
    errors = [r for r in helped_doc["results"] if r["status"] == "error"]
    assert errors and all("access_requests.ndjson:2" in r["message"] for r in errors)


def test_the_split_merges_exactly_over_many_files_and_periodic_steps(tmp_path, monkeypatch, helped):
    """Several files of one log (NDJSON, gzip and a JSON document) and a periodic run: every block boundary and
    every step's accumulators merge into the single-pass answer, evidence order and timelines included."""
    if parallel.context(0) is None:
        pytest.skip(f"cannot fork a helper here (one core, no fork, or threads: {threading.enumerate()})")
    data = tmp_path / "data"
    data.mkdir()
    lines = gzip.decompress((REPO / "examples" / "data" / "access_requests.ndjson.gz").read_bytes()).splitlines(True)
    third = len(lines) // 3
    (data / "access_requests-1.ndjson").write_bytes(b"".join(lines[:third]))
    with gzip.open(data / "access_requests-2.ndjson.gz", "wb") as fh:
        fh.write(b"".join(lines[third:2 * third]))
    (data / "access_requests-3.json").write_text(json.dumps([json.loads(x) for x in lines[2 * third:]]))
    (data / "scim_updates.json").write_text((REPO / "examples" / "data" / "scim_updates.json").read_text())
    period = ["--period", "2026-11-08T00:00:00Z/2026-11-15T00:00:00Z", "--step", "1d"]
    code, split = _run(tmp_path, "split", data, period)
    assert sum(helped) > 10, "the helper took too few blocks to test the merge"
    monkeypatch.setenv(parallel.ENV, "1")
    assert (code, split) == _run(tmp_path, "single", data, period)
    assert split["results"][0]["timeline"]


def test_a_helper_starts_only_for_large_input_with_a_free_core(monkeypatch):
    monkeypatch.setenv(parallel.ENV, "2")
    if parallel.context(0) is None:
        pytest.skip(f"cannot fork a helper here (no fork, or threads: {threading.enumerate()})")
    monkeypatch.delenv(parallel.ENV)
    monkeypatch.setattr(parallel.os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert parallel.context(parallel.MIN_BYTES) is not None
    assert parallel.context(parallel.MIN_BYTES - 1) is None  # too small to pay
    monkeypatch.setattr(parallel.os, "getloadavg", lambda: (1.8, 1.8, 1.8))
    assert parallel.context(parallel.MIN_BYTES) is None  # the cores are busy: a second process only competes
    monkeypatch.setenv(parallel.ENV, "2")
    assert parallel.context(0) is not None
    monkeypatch.setenv(parallel.ENV, "1")
    assert parallel.context(1 << 40) is None
