"""Exported logs as a SQL relation (DuckDB): `t_us` plus one column per field, for the SQL engines.

Reads NDJSON (API or Logpush shape, optionally gzip: every Logpush batch object) through DuckDB's own
reader, and JSON documents (a list, an API envelope) through auditor's reader into a temporary NDJSON file
first. Times are normalised in SQL as auditor.core.timeutil does in Python: RFC 3339 text with an offset;
integer unix seconds, or nanoseconds from 1e14 on (Logpush `unix`/`unixnano`); `rfc3339ms`/`rfc3339ns` are
RFC 3339. A record time that is neither is a data error, as in a Python pass. The time column shown as
evidence keeps the record's text; for epoch times it is left null here and written from `t_us` by the
engine (as the Python reader formats it). Country codes are read upper case, as by the Python reader.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from auditor.core.fields import SOURCES, Field, FieldType
from auditor.core.timeutil import EARLIEST_US, END_US, FIRST_US, LATEST_US

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


WRONG, ODD, FILE = "_wrong", "_odd", "_file"  # the relation's columns beside t_us and the fields (see json_relation)
EXTRAS = (WRONG, ODD, FILE)


def json_relation(paths: Sequence[Path], source: str) -> str:
    """SELECT of the records of NDJSON files of one log: t_us, the fields by API name, `_wrong`, `_odd`, `_file`.

    Each line is read as a JSON object and every field extracted by its exact (case-sensitive) key: API names,
    and for a Logpush-shaped record (one with `CreatedAt` or `Email`) the Logpush name first.
    A field's column holds its value only when it has the field's type (a string, a boolean); a value of another
    type (`"allowed": "yes"`, a number where text is expected) leaves the column null, as Python compares it
    unequal to every operand, and is kept for what Python decides itself (auditor.evaluate.sql): `_wrong` names
    such fields (`,allowed,`, null when none) and `_odd` is a JSON object of their values and of the fields
    present as null (null when none: a missing field and a null one only differ in the run's type warnings).
    `_file` is the file a record came from (provenance).
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
    logpush = ("(ty[{}] IS NOT NULL OR ty[{}] IS NOT NULL)".format(at["CreatedAt"], at["Email"])
               if source == "access_requests" else "FALSE")

    def element(pick: str, key: str) -> str:  # text (v), JSON type (ty) or, for the rare odd row, the JSON value
        return f"json_extract(json, {_quote('$.' + key)})" if pick == "b" else f"{pick}[{at[key]}]"

    def value(name: str, logpush_name: str | None, pick: str) -> str:
        api = element(pick, name)
        if logpush_name is None:
            return api
        return f"CASE WHEN {logpush} THEN COALESCE({element(pick, logpush_name)}, {api}) ELSE {api} END"

    def kind(f: Field) -> str:  # the JSON type of the record's value (NULL: missing; 'NULL': null)
        if f.logpush is None:
            return element("ty", f.name)
        # As the Python reader renames a Logpush record's keys: the Logpush name's value when it has one.
        return (f"CASE WHEN {logpush} AND ty[{at[f.logpush]}] IS NOT NULL THEN {element('ty', f.logpush)} "
                f"ELSE {element('ty', f.name)} END")

    fields, wrong, odd = [], [], []
    for f in src.fields.values():
        if f.name == src.time_field:
            raw = value(f.name, f.logpush, "v")
            fields.append(f"CASE WHEN regexp_matches({raw}, {_quote(_INT)}) THEN NULL ELSE {raw} END "
                          f"AS {_ident(f.name)}")
            continue
        expected = "BOOLEAN" if f.type is FieldType.BOOL else "VARCHAR"
        typed = f"{value(f.name, f.logpush, 'v')} = 'true'" if f.type is FieldType.BOOL else \
            value(f.name, f.logpush, "v")
        if f.name == "country":  # upper case from every source (Logpush writes `us`), as the Python reader
            typed = f"upper({typed})"
        fields.append(f"CASE WHEN {kind(f)} = '{expected}' THEN {typed} END AS {_ident(f.name)}")
        is_wrong = f"{kind(f)} NOT IN ('{expected}', 'NULL')"
        wrong.append(f"CASE WHEN {is_wrong} THEN '{f.name},' END")
        odd.append(f"CASE WHEN {kind(f)} = 'NULL' THEN '\"{f.name}\":null' "
                   f"WHEN {is_wrong} THEN '\"{f.name}\":' || {value(f.name, f.logpush, 'b')}::VARCHAR END")
    t_us = time_us(value(src.time_field, src.fields[src.time_field].logpush, "v"))
    # Two parses of each line, for every key's text and JSON type at once (per-key functions cost more); a value
    # of the wrong type is read again from the line, only in its own row (CASE evaluates a branch per row).
    read = (f"SELECT json, json_extract_string(json, {paths_list}) AS v, json_type(json, {paths_list}) AS ty, "  # noqa: S608
            "filename "
            f"FROM read_ndjson_objects({files}, compression='auto_detect', maximum_object_size=104857600, "
            "filename=true)")
    extra = (f"nullif(concat(',', {', '.join(wrong)}), ',') AS {WRONG}, "
             f"nullif('{{' || concat_ws(',', {', '.join(odd)}) || '}}', '{{}}') AS {ODD}, filename AS {FILE}")
    # Only identifiers from the fields table and quoted file paths are interpolated: no rule or record text.
    return f"SELECT {t_us} AS t_us, {', '.join(fields)}, {extra} FROM ({read})"  # noqa: S608


def time_us(raw: str) -> str:
    """DuckDB: record time text -> epoch microseconds (NULL when it is not a valid time)."""
    whole = f"TRY_CAST({raw} AS HUGEINT)"
    epoch = (f"CASE WHEN abs({whole}) >= 100000000000000 "
             f"THEN (CASE WHEN {whole} >= 0 THEN {whole} // 1000 ELSE -((999 - {whole}) // 1000) END) "
             f"ELSE {whole} * 1000000 END")
    text = f"epoch_us(TRY_CAST({raw} AS TIMESTAMPTZ))"
    # Within the times the Python reader accepts (NULL otherwise: the run then names the record as it does):
    # an epoch number years 1 to 9999, a text time 1970 to 8999 (auditor.core.timeutil).
    return (f"CASE WHEN {raw} IS NULL THEN NULL "
            f"WHEN regexp_matches({raw}, {_quote(_INT)}) THEN CAST(CASE WHEN {epoch} >= {FIRST_US} "
            f"AND {epoch} < {END_US} THEN {epoch} END AS BIGINT) "
            f"WHEN regexp_matches({raw}, {_quote(_OFFSET)}) THEN CASE WHEN {text} >= {EARLIEST_US} "
            f"AND {text} < {LATEST_US} THEN {text} END "
            "ELSE NULL END")


def parquet_relation(lake: Path, source: str, present: Collection[str] = (WRONG, ODD),
                     span: tuple[int, int] | None = None) -> str:
    """SELECT of one log's records in a Parquet lake (auditor.sources.lake's layout): the files its manifest lists;
    `present`: which of the `_wrong`, `_odd` columns they have (lake_extras; files written without them hold no
    value of the wrong type). With `span` only the files of the days meeting it (auditor.sources.lake.files): the
    others are not opened at all."""
    from auditor.sources.lake import files

    paths = files(lake, source, span)
    if not paths:
        return empty_relation(source)
    # Country codes upper case whoever wrote the lake (as json_relation reads them).
    cols = ", ".join(f"upper({_ident(f)}) AS {_ident(f)}" if f == "country" else _ident(f)
                     for f in SOURCES[source].fields)
    extras = ", ".join(c if c in present else f"CAST(NULL AS VARCHAR) AS {c}" for c in (WRONG, ODD))
    listed = "[" + ", ".join(_quote(str(p)) for p in paths) + "]"
    # Only identifiers from the fields table and quoted paths are interpolated. By name: files written before
    # `_wrong` and `_odd` were have them null.
    return (f"SELECT t_us, {cols}, {extras}, CAST(NULL AS VARCHAR) AS {FILE} "  # noqa: S608
            f"FROM read_parquet({listed}, hive_partitioning=false, union_by_name=true)")


def lake_extras(con: Any, lake: Path, source: str) -> set[str]:
    """Which of `_wrong`, `_odd` some of the lake's files of one log have (none when they cannot be read: the
    query reading them then says why)."""
    from auditor.sources.lake import files

    paths = files(lake, source)
    if not paths:
        return set()
    listed = "[" + ", ".join(_quote(str(p)) for p in paths) + "]"
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({listed}, "  # noqa: S608
                                "hive_partitioning=false, union_by_name=true)").fetchall()
    except Exception:  # duckdb.Error (duckdb is imported lazily by the callers)
        return set()
    return {row[0] for row in described} & {WRONG, ODD}


def lake_nulls(con: Any, lake: Path, source: str) -> dict[str, tuple[int | None, int]]:
    """Per column of the lake's files of one log, from their Parquet statistics alone: (nulls, values); nulls None
    when some row group does not say."""
    from auditor.sources.lake import files

    paths = files(lake, source)
    if not paths:
        return {}
    listed = "[" + ", ".join(_quote(str(p)) for p in paths) + "]"
    try:
        rows = con.execute("SELECT path_in_schema, sum(stats_null_count), count(stats_null_count) = count(*), "  # noqa: S608
                           f"sum(num_values) FROM parquet_metadata({listed}) GROUP BY path_in_schema").fetchall()
    except Exception:  # duckdb.Error (duckdb is imported lazily by the callers)
        return {}
    return {name: (int(nulls) if told and nulls is not None else None, int(values))
            for name, nulls, told, values in rows}


def lake_span(con: Any, lake: Path, source: str) -> tuple[int, int | None, int | None] | None:
    """One log's record count and first and last `t_us` in a lake, from its files' Parquet statistics alone (no
    column is read); None when some file or row group does not state them exactly (a query must read them)."""
    from auditor.sources.lake import files

    paths = files(lake, source)
    if not paths:
        return 0, None, None
    listed = "[" + ", ".join(_quote(str(p)) for p in paths) + "]"
    try:
        row = con.execute("SELECT count(DISTINCT file_name), sum(row_group_num_rows), "  # noqa: S608
                          "min(TRY_CAST(stats_min_value AS BIGINT)), max(TRY_CAST(stats_max_value AS BIGINT)), "
                          "bool_and(type = 'INT64' AND stats_null_count = 0 AND min_is_exact AND max_is_exact "
                          "AND stats_min_value IS NOT NULL AND stats_max_value IS NOT NULL) "
                          f"FROM parquet_metadata({listed}) WHERE path_in_schema = 't_us'").fetchone()
    except Exception:  # duckdb.Error (duckdb is imported lazily by the callers)
        return None
    if row is None or row[0] != len(paths) or not row[4]:
        return None  # a file without row groups (or t_us), or a row group without exact statistics
    return int(row[1]), row[2], row[3]


def empty_relation(source: str) -> str:
    """SELECT of no records with a log's columns (a log with no file to read)."""
    src = SOURCES[source]
    cols = ", ".join(f"CAST(NULL AS {'BOOLEAN' if f.type is FieldType.BOOL else 'VARCHAR'}) AS {_ident(f.name)}"
                     for f in src.fields.values())
    extras = ", ".join(f"CAST(NULL AS VARCHAR) AS {c}" for c in EXTRAS)
    return f"SELECT CAST(NULL AS BIGINT) AS t_us, {cols}, {extras} WHERE FALSE"
