"""A Parquet log lake: `source=LOG/date=YYYY-MM-DD/*.parquet` (zstd), one column per field plus `t_us`.

Written by `auditor sync --to DIR` (`append`, from the API) or from exported files (`write_from_files`), read by
DuckDB (`run --data DIR`). `manifest.json` is written last: it lists, per log, the time intervals the lake
covers and the files that hold its records, so a lake without it is not read (an interrupted first write),
a file it does not list is not read (an interrupted later write), and what it does not cover is a gap, not a
quiet time.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.core.fields import SOURCES
from auditor.core.timeutil import format_time, parse_time
from auditor.sources.base import Timed
from auditor.sources.relation import ODD, WRONG

MANIFEST = "manifest.json"
STAGING = ".staging-"  # a write's files before they are moved into place (hidden: never read)
_PART = "part-*.parquet"


@dataclass(frozen=True)
class LakeLog:
    """What the manifest says of one log: the times it covers and the files holding its records."""

    covered: tuple[tuple[int, int], ...] = ()
    files: tuple[str, ...] | None = None  # relative to the lake; None: a lake that lists none (all are read)
    records: int | None = None
    idp_ids: tuple[str, ...] | None = None  # scim_updates synced from the API: the IdPs it was asked for
    # "read": each interval was read completely (sync); "records": first to last record (copied exports)
    basis: str = "read"

    def to_json(self) -> dict[str, Any]:
        """The log's manifest entry."""
        out: dict[str, Any] = {"covered": [[format_time(a), format_time(b)] for a, b in self.covered],
                               "basis": self.basis}
        if self.records is not None:
            out["records"] = self.records
        if self.idp_ids is not None:
            out["idp_ids"] = list(self.idp_ids)
        if self.files is not None:
            out["files"] = list(self.files)
        return out


def is_lake(path: Path) -> bool:
    """True when a directory is a log lake (it has the manifest)."""
    return path.is_dir() and (path / MANIFEST).is_file()


def read_manifest(lake: Path) -> dict[str, Any]:
    """The lake's manifest: {"version": 1, "logs": {LOG: {"covered": [[START, END], ...]}}}; ValueError when bad."""
    try:
        text = (lake / MANIFEST).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{lake / MANIFEST}: error: cannot read the lake manifest ({exc})") from None
    return _document(text, str(lake / MANIFEST))


def _document(text: str, shown: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{shown}: error: cannot read the lake manifest ({exc})") from None
    if not isinstance(document, dict) or document.get("version") != 1 or not isinstance(document.get("logs"), dict):
        raise ValueError(f"{shown}: error: not an auditor lake manifest (version 1 with logs)")
    return document


def read_logs(lake: Path) -> dict[str, LakeLog]:
    """Every log the manifest names (none when the lake has no manifest yet); ValueError when it is bad."""
    if not (lake / MANIFEST).is_file():
        return {}
    return _logs(read_manifest(lake), str(lake / MANIFEST))


def _logs(document: dict[str, Any], shown: str) -> dict[str, LakeLog]:
    out = {}
    for name, entry in document["logs"].items():
        try:
            files = entry.get("files")
            ids = entry.get("idp_ids")
            out[name] = LakeLog(tuple((parse_time(a), parse_time(b)) for a, b in entry.get("covered", ())),
                                None if files is None else tuple(str(f) for f in files), entry.get("records"),
                                None if ids is None else tuple(str(i) for i in ids), str(entry.get("basis", "read")))
        except (AttributeError, TypeError, ValueError) as exc:
            raise ValueError(f"{shown}: error: bad entry for {name} ({exc})") from None
    return out


def covered(lake: Path, source: str) -> tuple[tuple[int, int], ...]:
    """The intervals of `source` the manifest says the lake holds, as epoch microseconds."""
    log = read_manifest(lake)["logs"].get(source) or {}
    return tuple((parse_time(a), parse_time(b)) for a, b in log.get("covered", ()))


def files(lake: Path, source: str, span: tuple[int, int] | None = None) -> list[Path]:
    """The Parquet files holding `source`'s records: those the manifest lists (every part file when it lists
    none, as lakes written before it did). With `span` ([since, until) in epoch microseconds) only the files of
    the UTC days meeting it (their `date=` folder): the others hold no record of it."""
    log = read_logs(lake).get(source)
    if log is not None and log.files is not None:
        paths = [lake / f for f in log.files]
    else:
        paths = sorted((lake / f"source={source}").glob(f"*/{_PART}"))
    if span is None:
        return paths
    first, last = (format_time(t - t % (86400 * 1_000_000))[:10] for t in span)
    return [p for p in paths if not p.parent.name.startswith("date=")
            or first <= p.parent.name.removeprefix("date=") <= last]


def parse_manifest(text: str, shown: str) -> dict[str, LakeLog]:
    """Every log a manifest's text names (`shown`: where it is, for messages); ValueError when it is bad."""
    return _logs(_document(text, shown), shown)


def days_needed(paths: Sequence[str], windows: Sequence[tuple[int, int]]) -> list[str]:
    """The files (`source=LOG/date=DAY/...`) whose day meets some window [since, until): all a run reads."""
    from auditor.core.timeutil import US

    day = 86400 * US
    days = set()
    for since, until in windows:
        for n in range(since // day, (until - 1) // day + 1):
            days.add(format_time(n * day)[:10])
    return [p for p in paths if p.split("/")[1].removeprefix("date=") in days]


def write_manifest(lake: Path, logs: Mapping[str, LakeLog]) -> None:
    """Write the manifest atomically (temporary file, then rename): the last step of every write."""
    document = {"version": 1, "logs": {name: log.to_json() for name, log in sorted(logs.items())}}
    tmp = lake / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, lake / MANIFEST)


def tidy(lake: Path) -> None:
    """Remove what an interrupted write left: staging folders, and part files the manifest does not list
    (every part file when there is no manifest yet: an interrupted first write)."""
    for entry in lake.glob(f"{STAGING}*"):
        shutil.rmtree(entry, ignore_errors=True)
    logs = read_logs(lake)
    for folder in lake.glob("source=*"):
        log = logs.get(folder.name.removeprefix("source="))
        if log is not None and log.files is None:
            continue  # a lake from before files were listed: every part file is the lake's
        listed = set(log.files or ()) if log is not None else set()
        for path in folder.glob(f"*/{_PART}"):
            if path.relative_to(lake).as_posix() not in listed:
                path.unlink()


def check_target(lake: Path) -> None:
    """ValueError unless `lake` can be written as a lake: missing, empty, or holding only a lake's entries."""
    if not lake.exists():
        return
    if not lake.is_dir():
        raise ValueError(f"{lake}: error: not a directory")
    strays = [e.name for e in lake.iterdir() if not (e.name in (MANIFEST, f".{MANIFEST}.tmp", ".sync.lock")
                                                     or e.name.startswith(("source=", STAGING)))]
    if strays:
        raise ValueError(f"{lake}: error: not a log lake and not empty (it holds {sorted(strays)[0]}); "
                         "sync into a new directory")


def columns(source: str) -> list[str]:
    """The lake's columns of one log, in order: t_us, the fields in the fields table's order, then `_wrong` and
    `_odd` (values of the wrong type and explicit nulls, auditor.sources.relation; null in almost every row)."""
    return ["t_us", *SOURCES[source].fields, WRONG, ODD]


def write_from_files(lake: Path, files: Mapping[str, Sequence[Path]]) -> dict[str, int]:
    """Copy NDJSON exports (API or Logpush shape) into a new lake, one COPY per log; the records written per log.
    The manifest's coverage is each log's first to last record time (the files state no more)."""
    import tempfile

    import duckdb

    from auditor.sources.relation import is_lines, to_ndjson

    lake.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    counts: dict[str, int] = {}
    logs: dict[str, LakeLog] = {}
    scratch = tempfile.TemporaryDirectory(prefix="auditor-lake-")
    try:
        for source, given in sorted(files.items()):
            documents = [p for p in given if not is_lines(p)]
            paths = [p for p in given if is_lines(p)] + ([to_ndjson(documents, source, Path(scratch.name))]
                                                         if documents else [])
            con.execute(f"CREATE TEMP TABLE batch AS {_rows(paths, source)}")
            row = con.execute("SELECT count(*), min(t_us), max(t_us) FROM batch").fetchone()
            counts[source] = int(row[0]) if row else 0
            if row and row[0]:
                logs[source] = LakeLog(((int(row[1]), int(row[2]) + 1),), _stage(con, lake, source, "batch"),
                                       counts[source], basis="records")
            con.execute("DROP TABLE batch")
    finally:
        con.close()
        scratch.cleanup()
    write_manifest(lake, logs)
    return counts


def append(lake: Path, source: str, paths: Sequence[Path], held: LakeLog | None) -> tuple[tuple[str, ...], int]:
    """Write the records of NDJSON files (API shape) that the lake does not hold yet, as new part files; returns
    the files (relative to the lake) and the records added. Nothing is read until the manifest lists them.

    A record is held when its key is: `ray_id` for access_requests (its content when it has none), its whole
    content for scim_updates (which has no id). Only the days the new records fall on are compared.
    """
    import duckdb

    con = duckdb.connect()
    try:
        # Identifiers from the fields table and quoted paths only, here and below.
        con.execute(f"CREATE TEMP TABLE batch AS SELECT *, {_key(source)} AS _k FROM ({_rows(paths, source)})")  # noqa: S608
        days = {r[0] for r in con.execute("SELECT DISTINCT date FROM batch").fetchall()}
        old = [p for p in (files(lake, source) if held is not None else [])
               if p.parent.name.removeprefix("date=") in days]
        held_rows = f"read_parquet({_list(old)}, hive_partitioning=false, union_by_name=true)"
        if old and WRONG not in _columns_of(con, old):  # written before `_wrong` and `_odd` were kept
            held_rows = f"(SELECT *, NULL::VARCHAR AS {WRONG}, NULL::VARCHAR AS {ODD} FROM {held_rows})"  # noqa: S608
        known = (f"SELECT {_key(source)} AS _k FROM {held_rows}"  # noqa: S608
                 if old else "SELECT NULL::VARCHAR AS _k WHERE FALSE")
        con.execute("CREATE TEMP TABLE fresh AS SELECT * EXCLUDE (_k) FROM batch "  # noqa: S608
                    f"WHERE _k NOT IN ({known}) QUALIFY row_number() OVER (PARTITION BY _k ORDER BY t_us) = 1")
        row = con.execute("SELECT count(*) FROM fresh").fetchone()
        added = int(row[0]) if row else 0
        return (_stage(con, lake, source, "fresh") if added else ()), added
    finally:
        con.close()


def _rows(paths: Sequence[Path], source: str) -> str:
    """SELECT of NDJSON records as lake rows: the columns, and the day (`date`) they are partitioned by."""
    from auditor.sources.relation import json_relation

    time_field = SOURCES[source].time_field
    # An epoch time (null text in the relation) is stored as the RFC 3339 text the Python reader makes.
    text = (f"COALESCE(\"{time_field}\", CASE WHEN t_us % 1000000 = 0 "
            "THEN strftime(make_timestamp(t_us), '%Y-%m-%dT%H:%M:%SZ') "
            "ELSE strftime(make_timestamp(t_us), '%Y-%m-%dT%H:%M:%S.%fZ') END)")
    cols = ", ".join(text + f' AS "{c}"' if c == time_field else f'"{c}"' for c in columns(source))
    # Identifiers from the fields table and quoted paths only.
    return (f"SELECT {cols}, strftime(make_timestamp(t_us), '%Y-%m-%d') AS date "  # noqa: S608
            f"FROM ({json_relation(paths, source)})")


def _key(source: str) -> str:
    """SQL of a record's identity in a lake table: `ray_id` for sign-ins, else the content (time as t_us). A
    record holding values of the wrong type (named in `_wrong`; their columns are null) adds `_odd`, where they
    are, so two records differing only in such a value stay two; any other record keeps the key it had before
    lakes kept `_wrong` and `_odd`."""
    src = SOURCES[source]
    content = "md5(to_json({'t_us': t_us, " + ", ".join(
        f"'{f}': \"{f}\"" for f in src.fields if f != src.time_field) + (
        f"}}) || CASE WHEN {WRONG} IS NULL THEN '' ELSE {ODD} END)")
    return f'COALESCE("ray_id", {content})' if "ray_id" in src.fields else content


def _columns_of(con: Any, paths: Sequence[Path]) -> set[str]:
    """The columns some of the Parquet files have."""
    described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({_list(paths)}, "  # noqa: S608
                            "hive_partitioning=false, union_by_name=true)").fetchall()
    return {row[0] for row in described}


def _list(paths: Sequence[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def _stage(con: Any, lake: Path, source: str, table: str) -> tuple[str, ...]:
    """Write a table's rows as new day files: into a hidden staging folder, then each renamed into place."""
    staging = lake / f"{STAGING}{uuid.uuid4().hex}"
    target = str(staging).replace("'", "''")
    cols = ", ".join(f'"{c}"' for c in columns(source))
    con.execute(f"COPY (SELECT {cols}, date FROM {table} ORDER BY t_us) TO '{target}' "  # noqa: S608
                "(FORMAT parquet, PARTITION_BY (date), COMPRESSION zstd, FILENAME_PATTERN 'part-{uuid}')")
    out = []
    for path in sorted(staging.glob(f"date=*/{_PART}")):
        day = lake / f"source={source}" / path.parent.name
        day.mkdir(parents=True, exist_ok=True)
        os.replace(path, day / path.name)
        out.append((day / path.name).relative_to(lake).as_posix())
    shutil.rmtree(staging, ignore_errors=True)
    return tuple(out)


def lake_records(lake: Path, source: str) -> Iterator[Timed]:
    """A lake's records of one log, in time order, as (t_us, record) as the export had them (Python engine)."""
    import duckdb

    from auditor.sources.relation import EXTRAS, lake_extras, parquet_relation

    con = duckdb.connect()
    try:
        cursor = con.execute(f"{parquet_relation(lake, source, lake_extras(con, lake, source))} ORDER BY t_us")
        names = [d[0] for d in cursor.description or ()]
        fields = [(i, n) for i, n in enumerate(names) if i and n not in EXTRAS]
        odd = names.index(ODD)
        while rows := cursor.fetchmany(10000):
            for row in rows:
                record = {n: row[i] for i, n in fields if row[i] is not None}
                if row[odd] is not None:  # values of the wrong type and explicit nulls, as the export had them
                    record.update(json.loads(row[odd]))
                yield row[0], record
    finally:
        con.close()
