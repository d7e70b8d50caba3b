"""A Parquet log lake: written from exports, read by `run --data LAKE` (DuckDB by default, Python on request) with
the same results as the exports, its manifest the coverage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import app
from auditor.sources.lake import MANIFEST, is_lake, write_from_files
from tests.integration.test_logpush_data import _logpush_folder, _records

REPO = Path(__file__).resolve().parents[2]
AT = ["--at", "2026-11-15T00:00:00Z"]


def _run(*args: str, out: Path) -> dict:
    result = CliRunner().invoke(app.cli, ["run", *args, "--quiet", "--results", str(out)])
    assert result.exit_code in (0, 1, 2), result.output
    document = json.loads(out.read_text())
    document["summary"].pop("duration_s")
    return document


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lake")
    counts = write_from_files(path, {"access_requests": [REPO / "examples/data/access_requests.ndjson.gz"],
                                     "scim_updates": [REPO / "examples/data/scim_updates.json"]})
    assert counts == {"access_requests": 42071, "scim_updates": 1430}
    return path


def test_the_lake_is_hive_partitioned_zstd_parquet_with_a_manifest(lake):
    assert is_lake(lake)
    days = sorted(p.name for p in (lake / "source=access_requests").iterdir())
    assert days[0] == "date=2026-11-01" and days[-1] == "date=2026-11-14"
    manifest = json.loads((lake / MANIFEST).read_text())
    assert set(manifest["logs"]) == {"access_requests", "scim_updates"}


@pytest.mark.parametrize("engine", [[], ["--engine", "python"]])
def test_a_lake_gives_the_results_of_the_exports(lake, tmp_path, monkeypatch, engine):
    monkeypatch.chdir(REPO)
    exports = _run("--data", "examples/data", *AT, out=tmp_path / "a.json")
    from_lake = _run("--data", str(lake), *AT, *engine, out=tmp_path / "b.json")
    # Each result names the data it read (the exports' files, the lake's): nothing else may differ.
    assert [{**r, "fetch": None} for r in from_lake["results"]] == [{**r, "fetch": None} for r in exports["results"]]
    assert from_lake["summary"] == exports["summary"]


def test_the_manifest_is_the_lakes_coverage(lake, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    document = _run("--data", str(lake), "--at", "2026-11-20T00:00:00Z", "--rule", "scim-heartbeat-per-idp",
                    out=tmp_path / "c.json")
    assert ("scim-heartbeat-per-idp: no scim_updates data in the lake covers 2026-11-19T00:00:00Z..2026-11-20T00:00:00Z"
            in document["warnings"])


def test_logpush_objects_go_into_a_lake_unchanged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    records = _records()
    _logpush_folder(tmp_path / "lp", records, "unixnano")
    counts = write_from_files(tmp_path / "lake", {"access_requests": sorted((tmp_path / "lp").rglob("*.log.gz"))})
    assert counts == {"access_requests": len(records)}
