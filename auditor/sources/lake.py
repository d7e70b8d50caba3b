"""A Parquet log lake: `source=LOG/date=YYYY-MM-DD/*.parquet` (zstd), one column per field plus `t_us`.

Written by `auditor sync --to DIR` (or from exported files, `write_lake`), read by DuckDB (`run --data DIR`).
`manifest.json` is written last: it lists, per log, the time intervals the lake covers, so a lake without it
is not read (an interrupted first write), and what it does not list is a gap, not a quiet time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from auditor.core.fields import SOURCES
from auditor.core.timeutil import format_time, parse_time

MANIFEST = "manifest.json"


def is_lake(path: Path) -> bool:
    """True when a directory is a log lake (it has the manifest)."""
    return path.is_dir() and (path / MANIFEST).is_file()


def read_manifest(lake: Path) -> dict[str, Any]:
    """The lake's manifest: {"version": 1, "logs": {LOG: {"covered": [[START, END], ...]}}}; ValueError when bad."""
    try:
        document = json.loads((lake / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{lake / MANIFEST}: error: cannot read the lake manifest ({exc})") from None
    if not isinstance(document, dict) or document.get("version") != 1 or not isinstance(document.get("logs"), dict):
        raise ValueError(f"{lake / MANIFEST}: error: not an auditor lake manifest (version 1 with logs)")
    return document


def covered(lake: Path, source: str) -> tuple[tuple[int, int], ...]:
    """The intervals of `source` the manifest says the lake holds, as epoch microseconds."""
    log = read_manifest(lake)["logs"].get(source) or {}
    return tuple((parse_time(a), parse_time(b)) for a, b in log.get("covered", ()))


def write_manifest(lake: Path, logs: Mapping[str, Sequence[tuple[int, int]]]) -> None:
    """Write the manifest atomically (temporary file, then rename): the last step of every write."""
    document = {"version": 1, "logs": {name: {"covered": [[format_time(a), format_time(b)] for a, b in spans]}
                                      for name, spans in sorted(logs.items())}}
    tmp = lake / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, lake / MANIFEST)


def columns(source: str) -> list[str]:
    """The lake's columns of one log, in order: t_us, then the fields in the fields table's order."""
    return ["t_us", *SOURCES[source].fields]


def write_from_files(lake: Path, files: Mapping[str, Sequence[Path]]) -> dict[str, int]:
    """Copy NDJSON exports (API or Logpush shape) into a lake, one COPY per log; the records written per log.
    The manifest's coverage is each log's first to last record time (the files state no more)."""
    import tempfile

    import duckdb

    from auditor.sources.relation import is_lines, json_relation, to_ndjson

    lake.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    counts: dict[str, int] = {}
    spans: dict[str, list[tuple[int, int]]] = {}
    scratch = tempfile.TemporaryDirectory(prefix="auditor-lake-")
    try:
        for source, given in sorted(files.items()):
            documents = [p for p in given if not is_lines(p)]
            paths = [p for p in given if is_lines(p)] + ([to_ndjson(documents, source, Path(scratch.name))]
                                                         if documents else [])
            time_field = SOURCES[source].time_field
            # An epoch time (null text in the relation) is stored as the RFC 3339 text the Python reader makes.
            text = (f"COALESCE(\"{time_field}\", CASE WHEN t_us % 1000000 = 0 "
                    "THEN strftime(make_timestamp(t_us), '%Y-%m-%dT%H:%M:%SZ') "
                    "ELSE strftime(make_timestamp(t_us), '%Y-%m-%dT%H:%M:%S.%fZ') END)")
            cols = ", ".join(text + f' AS "{c}"' if c == time_field else f'"{c}"' for c in columns(source))
            # Identifiers from the fields table and quoted paths only.
            select = (f"SELECT {cols}, '{source}' AS source, "  # noqa: S608
                      f"strftime(make_timestamp(t_us), '%Y-%m-%d') AS date FROM ({json_relation(paths, source)})")
            con.execute(f"CREATE TEMP TABLE batch AS {select}")
            row = con.execute("SELECT count(*), min(t_us), max(t_us) FROM batch").fetchone()
            counts[source] = int(row[0]) if row else 0
            if row and row[0]:
                spans[source] = [(int(row[1]), int(row[2]) + 1)]
                target = str(lake).replace("'", "''")
                con.execute(f"COPY batch TO '{target}' (FORMAT parquet, PARTITION_BY (source, date), "
                            "COMPRESSION zstd, OVERWRITE_OR_IGNORE, FILENAME_PATTERN 'part-{uuid}')")
            con.execute("DROP TABLE batch")
    finally:
        con.close()
        scratch.cleanup()
    write_manifest(lake, spans)
    return counts
