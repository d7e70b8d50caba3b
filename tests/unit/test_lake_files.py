"""A lake's files as the SQL engines get them: the manifest's, pruned to the days a span meets, and named to Spark
as URIs it reads as they are (a local lake as `file:` paths, not percent-encoded; a store's URI passed through);
a log's record count and time span from the files' statistics."""

from __future__ import annotations

from pathlib import Path

from auditor.core.timeutil import parse_time
from auditor.run.spark import uri
from auditor.sources.lake import LakeLog, files, write_manifest

DAYS = ("2026-11-18", "2026-11-19", "2026-11-20")


def test_a_span_keeps_the_files_of_the_days_it_meets(tmp_path):
    listed = tuple(f"source=access_requests/date={d}/part-{i}.parquet" for i, d in enumerate(DAYS))
    write_manifest(tmp_path, {"access_requests": LakeLog(files=listed)})
    assert files(tmp_path, "access_requests") == [tmp_path / p for p in listed]
    span = (parse_time("2026-11-19T18:00:00Z"), parse_time("2026-11-20T06:00:00Z"))
    assert files(tmp_path, "access_requests", span) == [tmp_path / p for p in listed[1:]]
    one_day = (parse_time("2026-11-18T00:00:00Z"), parse_time("2026-11-18T23:59:59Z"))
    assert files(tmp_path, "access_requests", one_day) == [tmp_path / listed[0]]


def test_spark_gets_local_files_as_file_uris_and_a_stores_uri_as_it_is(tmp_path):
    path = tmp_path / "source=access_requests" / "date=2026-11-20" / "part-a b.parquet"
    assert uri(path) == f"file://{path.resolve()}"  # `=` and the space as they are: Hadoop decodes nothing
    assert uri("s3a://bucket/lake/source=access_requests/date=2026-11-20/part-1.parquet") == \
        "s3a://bucket/lake/source=access_requests/date=2026-11-20/part-1.parquet"


def test_a_lakes_count_and_time_span_come_from_its_parquet_statistics(tmp_path):
    import duckdb

    from auditor.sources.lake import write_from_files
    from auditor.sources.relation import lake_extras, lake_span, parquet_relation
    from tests.helpers import access, write_ndjson

    times = ["2026-11-18T10:00:00.000001Z", "2026-11-19T10:00:00Z", "2026-11-20T23:59:59.999999Z"]
    write_ndjson(tmp_path / "a.ndjson", [access(created_at=t, ray_id=str(i)) for i, t in enumerate(times)])
    lake = tmp_path / "lake"
    write_from_files(lake, {"access_requests": [tmp_path / "a.ndjson"]})
    con = duckdb.connect()
    relation = parquet_relation(lake, "access_requests", lake_extras(con, lake, "access_requests"))
    counted = con.execute(f"SELECT count(*), min(t_us), max(t_us) FROM ({relation})").fetchone()
    assert lake_span(con, lake, "access_requests") == counted == (3, parse_time(times[0]), parse_time(times[-1]))
    assert lake_span(con, lake, "scim_updates") == (0, None, None)  # no files: no records
    # A file without row groups states no time: the statistics do not settle it, a query must.
    empty = files(lake, "access_requests")[0]
    con.execute(f"COPY (SELECT * FROM read_parquet('{empty}') WHERE false) TO '{empty}.new' (FORMAT parquet)")
    Path(f"{empty}.new").replace(empty)
    assert lake_span(con, lake, "access_requests") is None
    con.close()
