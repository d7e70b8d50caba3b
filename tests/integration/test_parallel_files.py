"""Large exported logs use a second core (auditor.evaluate.parallel): a forked helper evaluates part of the rules in
its own pass. The answer must be exactly the single-pass answer, and any failure of the helper must only
cost time: the parent then evaluates those rules itself."""

from __future__ import annotations

import json
import os
import threading
import time
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

def _run(tmp_path: Path, name: str, data: Path = REPO / "examples" / "data") -> tuple[int, dict]:
    results = tmp_path / f"{name}.json"
    result = CliRunner().invoke(cli, ["run", str(REPO / "rules"), "--config", str(REPO / "auditor.yaml"), "--data",
                                       str(data), "--data-covers", SAMPLE_COVERS, "--at", AT, "--quiet",
                                       "--no-progress", "--results", str(results)], catch_exceptions=False)
    assert "Traceback" not in result.output + result.stderr
    document = json.loads(results.read_text())
    document["summary"].pop("duration_s")
    return result.exit_code, document


@pytest.fixture
def helped(monkeypatch):
    """Every file unit gets a helper (the sample data is far below MIN_BYTES); counts the helpers started.

    A helper is only forked while no other thread runs: threads of earlier tests (closed emulators' and
    clients') are given a moment to end first."""
    deadline = time.monotonic() + 5
    while threading.active_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)
    monkeypatch.delenv(parallel.ENV, raising=False)
    started = []
    original = parallel.Helper.__init__

    def counting(self, ctx, work):
        started.append(work)
        original(self, ctx, work)

    monkeypatch.setattr(parallel.Helper, "__init__", counting)
    return started


def test_a_helper_gives_the_single_pass_answer(tmp_path, monkeypatch, helped):
    if parallel.context(0) is None:
        pytest.skip(f"cannot fork a helper here (one core, no fork, or threads: {threading.enumerate()})")
    code, with_helper = _run(tmp_path, "helped")
    assert helped, "no helper was started"
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

    def broken(unit, handed):
        if failure == "exception":
            raise RuntimeError("helper broke")
        if failure == "dies":
            os._exit(3)
        return "ok", [lambda: None for _ in handed]  # cannot be pickled back to the parent

    monkeypatch.setattr(unit, "_helper_pass", broken)
    code, document = _run(tmp_path, "broken")
    # Same answer; the run says why the helper failed (it used to drop the reason).
    warnings = [w for w in document.pop("warnings") if w not in expected[1]["warnings"]]
    assert (code, document) == (expected[0], {k: v for k, v in expected[1].items() if k != "warnings"})
    why = {"exception": "raised RuntimeError('helper broke')", "dies": "exit code 3",
           "unpicklable": "ended without an answer"}[failure]
    assert warnings and all(why in w and "this process evaluated its rules instead" in w for w in warnings)
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


def test_share_balances_by_window_and_keeps_work_for_the_parent():
    assert parallel.share([5, 1, 1, 1], kept=0) == [0]
    assert parallel.share([1, 1], kept=10) == [0, 1]
    assert parallel.share([3], kept=0) == []  # a helper with everything leaves the parent idle
    assert parallel.share([], kept=4) == []
