"""Exported logs as a SQL relation (DuckDB): `t_us` plus one column per field, for the SQL engines.

Reads NDJSON (API or Logpush shape, optionally gzip: every Logpush batch object) through DuckDB's own
reader, and JSON documents (a list, an API envelope) through auditor's reader into a temporary NDJSON file
first. Times are normalised in SQL as auditor.core.timeutil does in Python: RFC 3339 text with an offset;
integer unix seconds, or nanoseconds from 1e14 on (Logpush `unix`/`unixnano`); `rfc3339ms`/`rfc3339ns` are
RFC 3339. A record time that is neither is a data error, as in a Python pass. The time column shown as
evidence keeps the record's text; for epoch times it is left null here and written from `t_us` by the
engine (as the Python reader formats it).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from auditor.core.fields import SOURCES, FieldType

_LINES = (".ndjson", ".jsonl", ".log")
_INT = "^-?[0-9]+$"
_OFFSET = "(Z|z|[+-][0-9][0-9](:?[0-9][0-9])?)$"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def is_lines(path: Path) -> bool:
    """True when a file's name says one JSON object per line (NDJSON, JSONL, a Logpush `.log` object)."""
    return path.name.removesuffix(".gz").endswith(_LINES)


def to_ndjson(paths: Sequence[Path], source: str, directory: Path) -> Path:
    """JSON documents (lists, envelopes) rewritten as one NDJSON file, read by auditor's own reader."""
    from auditor.sources.files import iter_records  # the streaming reader, only for this rarer path

    out = Path(tempfile.mkstemp(suffix=".ndjson", dir=directory)[1])
    with out.open("w", encoding="utf-8") as f:
        for p in paths:
            for record in iter_records(p, source):
                f.write(json.dumps(record) + "\n")
    return out


def json_relation(paths: Sequence[Path], source: str) -> str:
    """SELECT of the records of NDJSON files of one log: t_us and the fields by API name.

    Each line is read as a JSON object and every field extracted by its exact (case-sensitive) key in one
    parse: API names, and for a Logpush-shaped record (one with `CreatedAt` or `Email`) the Logpush name first.
    """
    src = SOURCES[source]
    keys: list[str] = []
    for f in src.fields.values():
        keys.append(f.name)
        if f.logpush:
            keys.append(f.logpush)
    at = {k: i + 1 for i, k in enumerate(keys)}  # DuckDB lists are 1-based
    paths_list = "[" + ", ".join(_quote("$." + k) for k in keys) + "]"
    files = "[" + ", ".join(_quote(str(p)) for p in paths) + "]"
    logpush = ("(v[{}] IS NOT NULL OR v[{}] IS NOT NULL)".format(at["CreatedAt"], at["Email"])
               if source == "access_requests" else "FALSE")

    def value(name: str, logpush_name: str | None, text: bool) -> str:
        pick = "v" if text else "b"
        api = f"{pick}[{at[name]}]"
        if logpush_name is None:
            return api
        return f"CASE WHEN {logpush} THEN COALESCE({pick}[{at[logpush_name]}], {api}) ELSE {api} END"

    fields = []
    for f in src.fields.values():
        if f.type is FieldType.BOOL:
            fields.append(f"TRY_CAST({value(f.name, f.logpush, False)} AS BOOLEAN) AS {_ident(f.name)}")
        elif f.name == src.time_field:
            raw = value(f.name, f.logpush, True)
            fields.append(f"CASE WHEN regexp_matches({raw}, {_quote(_INT)}) THEN NULL ELSE {raw} END "
                          f"AS {_ident(f.name)}")
        else:
            fields.append(f"{value(f.name, f.logpush, True)} AS {_ident(f.name)}")
    t_us = time_us(value(src.time_field, src.fields[src.time_field].logpush, True))
    read = (f"SELECT json_extract_string(json, {paths_list}) AS v, json_extract(json, {paths_list}) AS b "  # noqa: S608
            f"FROM read_ndjson_objects({files}, compression='auto_detect', maximum_object_size=104857600)")
    # Only identifiers from the fields table and quoted file paths are interpolated: no rule or record text.
    return f"SELECT {t_us} AS t_us, {', '.join(fields)} FROM ({read})"  # noqa: S608


def time_us(raw: str) -> str:
    """DuckDB: record time text -> epoch microseconds (NULL when it is not a valid time)."""
    whole = f"TRY_CAST({raw} AS HUGEINT)"
    return (f"CASE WHEN {raw} IS NULL THEN NULL "
            f"WHEN regexp_matches({raw}, {_quote(_INT)}) THEN CAST(CASE WHEN abs({whole}) >= 100000000000000 "
            f"THEN (CASE WHEN {whole} >= 0 THEN {whole} // 1000 ELSE -((999 - {whole}) // 1000) END) "
            f"ELSE {whole} * 1000000 END AS BIGINT) "
            f"WHEN regexp_matches({raw}, {_quote(_OFFSET)}) THEN epoch_us(TRY_CAST({raw} AS TIMESTAMPTZ)) "
            "ELSE NULL END")


def parquet_relation(lake: Path, source: str) -> str:
    """SELECT of one log's records in a Parquet lake (auditor.sources.lake's layout): the files its manifest lists."""
    from auditor.sources.lake import files

    paths = files(lake, source)
    if not paths:
        return empty_relation(source)
    cols = ", ".join(_ident(f) for f in SOURCES[source].fields)
    listed = "[" + ", ".join(_quote(str(p)) for p in paths) + "]"
    # Only identifiers from the fields table and quoted paths are interpolated.
    return f"SELECT t_us, {cols} FROM read_parquet({listed}, hive_partitioning=false)"  # noqa: S608


def empty_relation(source: str) -> str:
    """SELECT of no records with a log's columns (a log with no file to read)."""
    src = SOURCES[source]
    cols = ", ".join(f"CAST(NULL AS {'BOOLEAN' if f.type is FieldType.BOOL else 'VARCHAR'}) AS {_ident(f.name)}"
                     for f in src.fields.values())
    return f"SELECT CAST(NULL AS BIGINT) AS t_us, {cols} WHERE FALSE"
