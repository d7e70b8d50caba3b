"""The automatic engine: an explicit --engine wins, then the configured one (over --data), then the input:
DuckDB for a lake and for exports of DUCKDB_FROM_BYTES of JSON or more (gzip counted inflated), else Python."""

from __future__ import annotations

import gzip

from auditor.run import choose
from auditor.run.choose import choose_engine, json_bytes
from auditor.sources.datasource import DataSource
from auditor.sources.lake import write_from_files
from tests.helpers import write_ndjson

RECORD = {"created_at": "2026-11-20T10:00:00Z", "ray_id": "r", "user_email": "a@example.com", "allowed": True}


def test_small_exports_and_the_api_go_to_python_a_lake_to_duckdb(tmp_path):
    write_ndjson(tmp_path / "data" / "access_requests.ndjson", [RECORD])
    write_from_files(tmp_path / "lake", {"access_requests": [tmp_path / "data" / "access_requests.ndjson"]})
    assert choose_engine(None, None, None) == "python"
    assert choose_engine(None, None, DataSource(tmp_path / "data")) == "python"
    assert choose_engine(None, None, DataSource(tmp_path / "lake")) == "duckdb"


def test_an_explicit_engine_wins_then_the_configured_one(tmp_path):
    write_ndjson(tmp_path / "data" / "access_requests.ndjson", [RECORD])
    write_from_files(tmp_path / "lake", {"access_requests": [tmp_path / "data" / "access_requests.ndjson"]})
    assert choose_engine("python", "duckdb", DataSource(tmp_path / "lake")) == "python"
    assert choose_engine(None, "python", DataSource(tmp_path / "lake")) == "python"
    assert choose_engine(None, "duckdb", DataSource(tmp_path / "data")) == "duckdb"
    assert choose_engine(None, "duckdb", None) == "python"  # only the Python engine reads the API


def test_large_exports_go_to_duckdb_gzip_counted_inflated(tmp_path, monkeypatch):
    plain = tmp_path / "plain" / "access_requests.ndjson"
    write_ndjson(plain, [RECORD] * 200)
    packed = tmp_path / "packed" / "access_requests.ndjson.gz"
    packed.parent.mkdir()
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    size = plain.stat().st_size
    assert json_bytes([packed]) == size > packed.stat().st_size
    monkeypatch.setattr(choose, "DUCKDB_FROM_BYTES", size)
    assert choose_engine(None, None, DataSource(tmp_path / "packed")) == "duckdb"
    assert choose_engine(None, None, DataSource(tmp_path / "plain")) == "duckdb"
    monkeypatch.setattr(choose, "DUCKDB_FROM_BYTES", size + 1)
    assert choose_engine(None, None, DataSource(tmp_path / "packed")) == "python"
