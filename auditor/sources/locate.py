"""Where each log's records are under `--data`: plain export files, and Logpush destination folders.

`--data DIR` may hold, per log, plain files named after it (`access_requests.ndjson.gz`, `scim_updates.json`)
and a folder named after it in the Logpush layout (`access_requests/20261120/...log.gz`), or be a Logpush
folder itself (then it holds access_requests, the one dataset Logpush exports). `--data LOG=PATH` names
one log's location explicitly (a file, or a Logpush folder) and wins over what a directory holds. A Logpush
folder may be in object storage (`s3://`, `r2://`, `gs://`; auditor.sources.objects): it is listed, pruned by
object name like a local one, and only the objects a window needs are downloaded.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from auditor.compile.plan import Plan
from auditor.core.fields import SOURCES
from auditor.sources.base import DataError
from auditor.sources.files import find_source_files
from auditor.sources.lake import (
    MANIFEST,
    LakeLog,
    is_lake,
    parse_manifest,
    read_manifest,
)
from auditor.sources.lake import covered as lake_covered
from auditor.sources.logpush import (
    LOGPUSH_SOURCE,
    Batch,
    LogpushError,
    batches_from_keys,
    covered,
    find_batches,
    is_logpush_folder,
    prune,
)
from auditor.sources.objects import ObjectPath, ObjectStoreError, connect, list_keys, parse_object_path

Location = Path | ObjectPath  # a local path, or a folder in object storage


@dataclass(frozen=True)
class LogData:
    """One log's records: plain files, and Logpush batch objects (with their folder)."""

    source: str
    files: tuple[Path, ...] = ()
    batches: tuple[Batch, ...] = ()
    folder: Path | None = None  # the Logpush folder the batches came from
    lake: Path | None = None  # a Parquet log lake holding this log (auditor.sources.lake)
    remote: ObjectPath | None = None  # the batches (or lake files) are objects there until downloaded
    remote_lake: LakeLog | None = None  # a lake in object storage: this log's manifest entry

    def pruned(self, windows: Sequence[tuple[int, int]]) -> LogData:
        """Only the batch objects that may hold a record of some window (plain files are always read)."""
        return dataclasses.replace(self, batches=tuple(prune(self.batches, windows)))

    def coverage(self) -> tuple[tuple[int, int], ...]:
        """The times the Logpush objects' names (or the lake's manifest) cover; empty when neither says."""
        if self.lake is not None:
            return lake_covered(self.lake, self.source)
        return covered(self.batches)

    def paths(self) -> list[Path]:
        """Every file to read: plain files, then batch objects in time order."""
        return [*self.files, *(Path(b.location) for b in self.batches)]


@dataclass
class Located:
    """Every log found under `--data`, and the problem with a log that was looked for and not found."""

    logs: dict[str, LogData] = field(default_factory=dict)
    problem: str | None = None


def location(text: str) -> Location:
    """A `--data` location: an object storage URL, else a local path."""
    remote = parse_object_path(text)
    return remote if remote is not None else Path(text)


def parse_data_args(values: Sequence[str]) -> tuple[Location | None, dict[str, Location]]:
    """`--data` values -> (the one unnamed PATH or None, {log: PATH}); ValueError with a one-line reason."""
    plain: list[Location] = []
    named: dict[str, Location] = {}
    for value in values:
        name, eq, rest = value.partition("=")
        if eq and name in SOURCES:
            if name in named:
                raise ValueError(f"--data {name}= is given twice")
            named[name] = location(rest)
        else:
            plain.append(location(value))
    if len(plain) > 1:
        raise ValueError("--data takes one PATH (and any LOG=PATH); name each log's location with LOG=PATH")
    return (plain[0] if plain else None), named


def locate(data: Location | None, source: str | None, named: Mapping[str, Location] | None = None,
           env: Mapping[str, str] | None = None) -> Located:
    """Find each log's records; a problem (no files at all, a bad Logpush folder) is reported, not raised.
    `env` holds object storage settings (default: the process environment)."""
    found = Located()
    env = os.environ if env is None else env
    try:
        if data is not None:
            found.logs.update(_remote_in(data, source, env) if isinstance(data, ObjectPath) else _in(data, source))
        for name, path in (named or {}).items():
            found.logs[name] = _remote(name, path, env) if isinstance(path, ObjectPath) else _named(name, path)
    except (DataError, LogpushError, ObjectStoreError) as exc:
        found.problem = str(exc)
    return found


def _remote_in(where: ObjectPath, source: str | None, env: Mapping[str, str]) -> dict[str, LogData]:
    """A bucket folder holds access_requests: in the Logpush layout itself, or in a folder named after it."""
    if source not in (None, LOGPUSH_SOURCE):
        raise ObjectStoreError(f"{where}: error: object storage holds Logpush folders of {LOGPUSH_SOURCE}, "
                               f"not {source}")
    client = connect(where, env)
    keys = list_keys(client, where)
    if where.child(MANIFEST).prefix in keys:
        shown = where.url(where.child(MANIFEST).prefix)
        try:
            logs = parse_manifest(client.get_object(Bucket=where.bucket, Key=where.child(MANIFEST).prefix)["Body"]
                                  .read().decode("utf-8"), shown)
        except ValueError as exc:
            raise ObjectStoreError(str(exc)) from None
        except Exception as exc:  # botocore's errors have no common base
            raise ObjectStoreError(f"{shown}: error: cannot download the lake manifest ({exc})") from None
        return {name: LogData(name, remote=where, remote_lake=log) for name, log in logs.items()
                if name in SOURCES and source in (None, name)}
    inner = where.child(LOGPUSH_SOURCE)
    batches = batches_from_keys([k for k in keys if k.startswith(f"{inner.prefix}/")], inner.prefix)
    if batches:
        return {LOGPUSH_SOURCE: _listed(inner, batches)}
    return {LOGPUSH_SOURCE: _remote(LOGPUSH_SOURCE, where, env, client)}


def _remote(name: str, where: ObjectPath, env: Mapping[str, str], client: object | None = None) -> LogData:
    if name != LOGPUSH_SOURCE:
        raise ObjectStoreError(f"{where}: error: Logpush exports only {LOGPUSH_SOURCE}; {name} has no Logpush "
                               "dataset")
    batches = batches_from_keys(list_keys(client or connect(where, env), where), where.prefix)
    if not batches:
        raise ObjectStoreError(f"{where}: error: no Logpush batch objects found; expected "
                               "{DATE}/{START}_{END}_{HASH}.log.gz under it")
    return _listed(where, batches)


def _listed(where: ObjectPath, batches: Sequence[Batch]) -> LogData:
    located = tuple(dataclasses.replace(b, location=where.url(b.location)) for b in batches)
    return LogData(LOGPUSH_SOURCE, (), located, remote=where)


def _in(data: Path, source: str | None) -> dict[str, LogData]:
    if is_lake(data):
        try:
            names = read_manifest(data)["logs"]
        except ValueError as exc:
            raise DataError(data, None, str(exc).split(": error: ", 1)[-1]) from None
        return {name: LogData(name, lake=data) for name in names if name in SOURCES and (source in (None, name))}
    if data.is_dir() and is_logpush_folder(data):
        if source not in (None, LOGPUSH_SOURCE):
            raise DataError(data, None, f"a Logpush folder holds {LOGPUSH_SOURCE} records, not {source}")
        return {LOGPUSH_SOURCE: _logpush(LOGPUSH_SOURCE, data)}
    logs: dict[str, LogData] = {}
    folders = {}
    if data.is_dir():
        folders = {name: data / name for name in SOURCES
                   if (source is None or name == source) and (data / name).is_dir() and is_logpush_folder(data / name)}
    try:
        files = find_source_files(data, source)
    except DataError:
        if not folders:
            raise
        files = {}
    for name in sorted(set(files) | set(folders)):
        batches = _logpush(name, folders[name]) if name in folders else None
        logs[name] = LogData(name, tuple(files.get(name, ())), batches.batches if batches else (),
                             folders.get(name))
    return logs


def _named(name: str, path: Path) -> LogData:
    if path.is_dir():
        if not is_logpush_folder(path):
            raise DataError(path, None, f"not a Logpush folder (for --data {name}=); expected {{DATE}} folders "
                            "of batch objects")
        return _logpush(name, path)
    return LogData(name, tuple(find_source_files(path, name)[name]))


def _logpush(name: str, folder: Path) -> LogData:
    if name != LOGPUSH_SOURCE:
        raise DataError(folder, None, f"Logpush exports only {LOGPUSH_SOURCE}; {name} has no Logpush dataset")
    return LogData(name, (), tuple(find_batches(folder)), folder)


def windows(plan: Plan, source: str) -> list[tuple[int, int]]:
    """Every window a rule (or correlation side) reads `source` over: what Logpush objects are pruned by."""
    out = []
    for r in plan.rules:
        if source in ({s.source for s in r.sides} if r.sides else {r.rule.source}):
            out.extend([(since, until) for _, since, until in r.windows] or [(r.since_us, r.until_us)])
    return out
