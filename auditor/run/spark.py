"""`--engine spark`: the rules' SQL on Apache Spark (the optional extra: `pip install 'auditor[spark]'`).

One Spark context per process (getOrCreate: `auditor test --engine spark` runs every case on it, a test session
starts it once); each run has a session of its own on it, so its views are its own. DuckDB reads the data into
the one relation shape (auditor.run.sql: the same time normalisation, data errors and type warnings as
`--engine duckdb`) and hands each log to Spark as a Parquet file; Spark evaluates the rules' queries, rendered
in its dialect. What Spark cannot decide exactly (a regex: Java's flavour is not Python's) goes to Python
(auditor.evaluate.sql.dialects).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from auditor.evaluate.sql.dialects import DIALECTS
from auditor.evaluate.sql.query import table_name

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
        self._views: list[str] = []

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
        self._views.append(name)

    def execute(self, sql: str) -> tuple[list[str], Sequence[Sequence[Any]]]:
        """Run a query: its column names and rows (collected to the driver)."""
        frame = self.spark.sql(sql)
        return list(frame.columns), frame.collect()

    def close(self) -> None:
        """Drop this run's views (the Spark context stays for the next run in this process)."""
        for name in self._views:
            self.spark.catalog.dropTempView(name)
