"""`--engine spark`: the rules' SQL on Apache Spark (the optional extra: `pip install 'auditor[spark]'`).

One Spark context per process (getOrCreate: `auditor test --engine spark` runs every case on it, a test session
starts it once); each run has a session of its own on it, so its views are its own. Spark evaluates the rules'
queries, rendered in its dialect, and serves the correlation rules' rows (auditor.run.tables). What Spark cannot
decide exactly (a regex: Java's flavour is not Python's) goes to Python (auditor.evaluate.sql.dialects).

What Spark reads itself, and what DuckDB reads for it (on the driver, auditor.run.sql):
- A Parquet log lake (auditor.sources.lake): Spark reads the Parquet files the manifest lists (`lake`), only
  the days a rule's steps meet, with an explicit schema (no file is read to infer it), normalised as DuckDB's
  relation is (auditor.sources.relation.parquet_relation: country codes upper case, `_wrong` and `_odd` null
  in files written before they existed). The files are given to Spark as URIs (`file:` for a local lake; a
  URI string such as `s3a://bucket/lake/...` would pass through as it is, for a cluster that reads the store
  itself, though auditor downloads a remote lake to the driver today). DuckDB still answers, from the same
  files on the driver, the cheap checks: each log's record count and time span (coverage: from the files'
  Parquet statistics, a query of `t_us` only where they do not state them) and the type warnings' tallies
  (from the statistics when they settle them, else a query, and a pass naming the first value of each).
- NDJSON and Logpush files and JSON documents: DuckDB reads them on the driver (the one relation: time
  normalisation, data errors with file and line, type warnings, provenance) and hands each log to Spark as one
  staged Parquet file (`mirror`). Those are single-machine inputs; a lake is the cluster path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from auditor.core.fields import SOURCES, FieldType
from auditor.evaluate.sql.dialects import DIALECTS
from auditor.evaluate.sql.query import table_name
from auditor.run.tables import BATCH
from auditor.sources.lake import columns, files
from auditor.sources.relation import FILE

INSTALL = "--engine spark needs PySpark (and Java 17 or later): pip install 'auditor[spark]'"
# DuckDB column types -> Spark's, for the schema given with each Parquet file (Spark then reads no file to learn
# it: a job per read otherwise).
_TYPES = {"BIGINT": "BIGINT", "BOOLEAN": "BOOLEAN", "VARCHAR": "STRING", "INTEGER": "INT", "DOUBLE": "DOUBLE"}


class EngineUnavailable(Exception):
    """The engine cannot start here (its optional package or Java is missing): a one-line reason."""


def session(master: str) -> Any:
    """The process's Spark session on `master` (started on first use); EngineUnavailable without PySpark/Java."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineUnavailable(INSTALL) from None
    builder = (SparkSession.builder.master(master).appName("auditor")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.session.timeZone", "UTC"))
    if master.startswith("local"):
        # One machine: few shuffle partitions (the engine returns per-group aggregates, not rows).
        builder = builder.config("spark.sql.shuffle.partitions", "2")
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # Java missing or too old: PySpark's gateway fails with its own exception types
        first = " ".join(str(exc).splitlines()[:1])
        raise EngineUnavailable(f"Spark did not start on {master}: {first} ({INSTALL})") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


class SparkTables:
    """The logs as Spark temporary views of a session of this run's own."""

    dialect = DIALECTS["spark"]

    def __init__(self, master: str, small: bool = False) -> None:
        self.spark = session(master).newSession()
        if small:  # a rule test's few records: no code generation or adaptive re-planning to pay for
            self.spark.conf.set("spark.sql.codegen.wholeStage", "false")
            self.spark.conf.set("spark.sql.adaptive.enabled", "false")
        self._views: set[str] = set()
        self._frames: dict[tuple[str, tuple[str, ...]], Any] = {}  # per view and files: the frame reading them

    def mirror(self, con: Any, source: str, scratch: Path) -> None:
        """A log's DuckDB table (or view) as a Spark view of the same name, through a Parquet file."""
        name = table_name(source)
        staged = (scratch / f"{name}.parquet").resolve()  # absolute: the JVM's working directory may differ
        columns = con.execute(f"DESCRIBE SELECT * FROM {name}").fetchall()  # noqa: S608
        quoted = str(staged).replace("'", "''")
        con.execute(f"COPY (SELECT * FROM {name}) TO '{quoted}' (FORMAT parquet)")  # noqa: S608
        read = self.spark.read
        if all(str(c[1]) in _TYPES for c in columns):
            read = read.schema(", ".join(f"`{c[0]}` {_TYPES[str(c[1])]}" for c in columns))
        read.parquet(str(staged)).createOrReplaceTempView(name)
        self._views.add(name)

    def lake(self, lake: Path, source: str, span: tuple[int, int] | None = None) -> None:
        """A log of a Parquet lake as a Spark view read by Spark from the lake's files (the days meeting `span`, else
        all), with parquet_relation's columns and normalisation."""
        name = table_name(source)
        uris = tuple(uri(p) for p in files(lake, source, span))
        if (name, uris) in self._frames:  # rules with the same days share one frame (a new one lists its files again)
            self._frames[name, uris].createOrReplaceTempView(name)
            return
        kinds = {f.name: "BOOLEAN" if f.type is FieldType.BOOL else "STRING" for f in SOURCES[source].fields.values()}
        # Given, so that Spark reads no file to infer it; a column a file lacks (`_wrong`, `_odd` in files written
        # before they existed) reads as null.
        schema = ", ".join(f"`{c}` {kinds.get(c, 'BIGINT' if c == 't_us' else 'STRING')}" for c in columns(source))
        frame = self.spark.read.schema(schema).parquet(*uris) if uris else self.spark.createDataFrame([], schema)
        # Country codes upper case whoever wrote the lake; no provenance column (a lake's files are not the export's).
        frame = frame.selectExpr(*(f"upper(`{c}`) AS `{c}`" if c == "country" else f"`{c}`" for c in columns(source)),
                                 f"CAST(NULL AS STRING) AS {FILE}")
        frame.createOrReplaceTempView(name)
        self._views.add(name)
        self._frames[name, uris] = frame

    def execute(self, sql: str) -> tuple[list[str], Sequence[Sequence[Any]]]:
        """Run a query: its column names and rows (collected to the driver)."""
        frame = self.spark.sql(sql)
        return list(frame.columns), frame.collect()

    def batches(self, sql: str) -> tuple[list[str], Iterator[Sequence[Sequence[Any]]]]:
        """Run a query: its column names and its rows streamed to the driver a partition at a time, in batches."""
        frame = self.spark.sql(sql)
        rows = frame.toLocalIterator()
        return list(frame.columns), iter(lambda: list(islice(rows, BATCH)), [])

    def close(self) -> None:
        """Drop this run's views (the Spark context stays for the next run in this process)."""
        for name in self._views:
            self.spark.catalog.dropTempView(name)


def uri(path: Path | str) -> str:
    """A file as a URI Spark reads on every node: `file:` for a local path; a URI (`s3a://...`) as it is. Not
    percent-encoded (Hadoop takes a path's characters as they are: `source%3D...` would be another folder)."""
    if isinstance(path, str) and "://" in path:
        return path
    return "file://" + Path(path).resolve().as_posix()
