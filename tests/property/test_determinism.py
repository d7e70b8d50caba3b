"""Determinism under `--at`: the same rules, data and reference time give the same results, whatever the
machine's clock, time zone or locale, and whatever order the records are stored in."""

from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path

from click.testing import CliRunner

from auditor.cli import cli
from tests.helpers import SAMPLE_COVERS

REPO = Path(__file__).resolve().parents[2]
AT = "2026-11-15T00:00:00Z"


def _run(data: Path, results: Path, env: dict[str, str]) -> dict:
    result = CliRunner().invoke(cli, ["run", str(REPO / "rules"), "--config", str(REPO / "auditor.yaml"), "--data",
                                       str(data), "--data-covers", SAMPLE_COVERS, "--at", AT, "--quiet",
                                       "--no-progress", "--results", str(results)], env=env, catch_exceptions=False)
    assert result.exit_code in (0, 1), result.stderr
    document = json.loads(results.read_text())
    document["summary"].pop("duration_s")
    return document


def test_a_run_at_a_fixed_time_is_reproducible(tmp_path, monkeypatch):
    sample = REPO / "examples" / "data"
    first = _run(sample, tmp_path / "a.json", {"TZ": "UTC", "LC_ALL": "C"})
    # Another zone and locale, and the records of both logs stored in another order.
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    for path in sample.iterdir():
        if path.name.startswith("access_requests"):
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8") as fh:
                lines = [line for line in fh if line.strip()]
            random.Random(3).shuffle(lines)
            (shuffled / "access_requests.ndjson").write_text("".join(lines), encoding="utf-8")
        elif path.name.startswith("scim_updates"):
            records = json.loads(path.read_text(encoding="utf-8"))
            records = records["result"] if isinstance(records, dict) else records
            random.Random(4).shuffle(records)
            (shuffled / "scim_updates.json").write_text(json.dumps(records), encoding="utf-8")
        else:
            shutil.copy(path, shuffled / path.name)
    second = _run(shuffled, tmp_path / "b.json", {"TZ": "Pacific/Kiritimati", "LC_ALL": "C.UTF-8"})
    # The files are others (their paths and bytes, named in provenance and each fetch); what they hold is not.
    for doc in (first, second):
        for f in doc["provenance"].pop("files"):
            assert f["records"] > 0
        for r in doc["results"]:
            assert r.pop("fetch").count("files ") >= 1
    assert second == first
