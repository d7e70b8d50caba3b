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
import functools
import json
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.compile.plan import Fetch, Plan
from auditor.core.coverage import Coverage, Interval, Seen, files_coverage, logpush
from auditor.core.coverage import lake as lake_coverage
from auditor.core.diagnostics import display_path
from auditor.core.fields import SOURCES
from auditor.core.provenance import FileRecord
from auditor.core.timeutil import format_time
from auditor.sources.base import Block, DataError, Part, SourceError, Timed
from auditor.sources.files import FileSource, file_part, find_source_files
from auditor.sources.lake import MANIFEST, LakeLog, days_needed, is_lake, parse_manifest, read_logs, read_manifest
from auditor.sources.lake import covered as lake_covered
from auditor.sources.lake import write_manifest as write_lake_manifest
from auditor.sources.logpush import (
    LOGPUSH_SOURCE,
    Batch,
    LogpushError,
    OutsideCounter,
    batches_from_keys,
    covered,
    find_batches,
    gaps,
    is_logpush_folder,
    prune,
)
from auditor.sources.objects import ObjectPath, ObjectStoreError, connect, download, list_keys, parse_object_path

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


class DataSource(FileSource):
    """`run --data`: plain export files and Logpush folders, per log, with the objects no window needs left
    unread; its notes name the gaps in the objects' coverage and the records outside their batch's range."""

    def __init__(self, data: Location | None, source: str | None = None, named: Mapping[str, Location] | None = None,
                 plan: Plan | None = None, covers: Mapping[str, tuple[Interval, ...]] | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.data = Path(str(data if data is not None else next(iter((named or {}).values()), ".")))
        self._covers = covers  # --data-covers: what the user states the data holds completely, per log
        self._located = locate(data, source, named, env)
        self._shown: dict[Path, str] = {}  # a downloaded object's local copy -> its URL, as messages name it
        self._scratch: Path | None = None  # downloaded objects: removed with this source (or at exit)
        self._files = {name: log.paths() for name, log in self._located.logs.items()}
        self._tally = {}  # provenance of the files read (FileSource.files)
        self._pending = {}  # the same, in a split pass (FileSource.settle)
        self._problem = None
        self._outside = OutsideCounter()
        self._split_outside = OutsideCounter()  # the same, counted in a split pass (see settle)
        self._plan = plan
        if plan is not None:
            self._located.logs = {name: log.pruned(windows(plan, name)) for name, log in self._located.logs.items()}
        self._fetch_objects(os.environ if env is None else env)
        self._files = {name: log.paths() for name, log in self._located.logs.items()}

    def _fetch_objects(self, env: Mapping[str, str]) -> None:
        """Download the (pruned) batch objects of logs in object storage into a temporary folder; of a lake
        there, the files of the days some window meets, under a manifest listing only those."""
        lakes: dict[Path, dict[str, LakeLog]] = {}
        for name, log in list(self._located.logs.items()):
            if log.remote is None:
                continue
            if self._scratch is None:
                self._scratch = Path(tempfile.mkdtemp(prefix="auditor-objects-"))
                weakref.finalize(self, shutil.rmtree, self._scratch, True)
            prefix = log.remote.url("")
            entry = log.remote_lake
            if entry is not None:
                listed = list(entry.files or ())
                wanted = days_needed(listed, windows(self._plan, name)) if self._plan is not None else listed
                keys = [log.remote.child(f).prefix for f in wanted]
            else:
                keys = [b.location.removeprefix(prefix) for b in log.batches]
            try:
                local = download(connect(log.remote, env), log.remote, keys, self._scratch)
            except ObjectStoreError as exc:
                del self._located.logs[name]
                self._located.problem = str(exc)
                continue
            if entry is not None:
                here = self._scratch / log.remote.prefix
                lakes.setdefault(here, {})[name] = dataclasses.replace(entry, files=tuple(wanted))
                self._shown[here] = str(log.remote)
                self._located.logs[name] = LogData(name, lake=here)
                continue
            batches = []
            for b in log.batches:
                path = local[b.location.removeprefix(prefix)]
                self._shown[path] = b.location
                batches.append(dataclasses.replace(b, location=str(path)))
            self._located.logs[name] = dataclasses.replace(log, batches=tuple(batches))
        for here, entries in lakes.items():
            here.mkdir(parents=True, exist_ok=True)  # no file of some log may be needed
            write_lake_manifest(here, entries)

    @property
    def logs(self) -> dict[str, LogData]:
        """Each log's files and (pruned) Logpush objects, for an engine reading them itself (auditor.run.sql)."""
        return self._located.logs

    def problem(self, log_source: str) -> SourceError | None:
        """The data's own problem, or no file or Logpush object of this log source."""
        if log_source in self._located.logs:
            return None
        if self._located.problem:
            return SourceError(self._located.problem)
        return super().problem(log_source)

    def files(self, unread: bool = False) -> tuple[FileRecord, ...]:
        """Every file read to its end (see FileSource.files); a downloaded object named by its URL."""
        urls = {display_path(local): url for local, url in self._shown.items()}
        return tuple(dataclasses.replace(f, path=urls.get(f.path, f.path)) for f in super().files(unread))

    def describe(self, fetch: Fetch, account_id: str | None) -> str:
        """The files (and object URLs) the fetch's log source was read from."""
        return "files " + ", ".join(self._shown.get(p) or display_path(p) for p in self._files.get(fetch.source, ()))

    def read(self, fetch: Fetch, index: int) -> Iterator[Part]:
        """Plain files, then the (pruned) Logpush objects in time order."""
        log = self._located.logs.get(fetch.source)
        if log is None:
            return
        if log.lake is not None:
            yield Part(self._shown.get(log.lake) or display_path(log.lake), lake_records(log.lake, fetch.source))
        for path in log.files:
            yield self._counted(path, file_part(path, fetch.source))
        for batch in log.batches:
            part = file_part(Path(batch.location), fetch.source)
            shown = self._shown.get(Path(batch.location), part.origin)
            checked = Part(shown, _checked(batch, shown, part.records, self._outside), part.line)
            yield self._counted(Path(batch.location), checked)

    def read_elsewhere(self, path: Path, count: int, first: int | None, last: int | None, outside: int) -> None:
        """A file another engine read to its end: its provenance, and its records outside its batch's range."""
        self.tallied(path, count, first, last)
        self._outside.add(display_path(path), outside)  # named as a Python pass names the object (its part)

    def size(self, fetch: Fetch) -> int:
        """The uncompressed bytes of a log's files and objects (a split pass shares them), 0 for a lake."""
        log = self._located.logs.get(fetch.source)
        return 0 if log is None or log.lake is not None else super().size(fetch)

    def read_split(self, fetch: Fetch, index: int, offer: Callable[[Block], bool], block_bytes: int) -> Iterator[Part]:
        """FileSource.read_split; the records found outside their batch's range are counted apart until
        `settle` adds the other process's."""
        self._split_outside = OutsideCounter()
        return super().read_split(fetch, index, offer, block_bytes)

    def _origin(self, path: Path) -> str:
        """A downloaded object is named by its URL."""
        return self._shown.get(path) or display_path(path)

    def _checking(self, path: Path, records: Iterator[Timed]) -> Iterator[Timed]:
        """A Logpush object's records in a split pass, those outside its name's time range counted."""
        batch = self._batches.get(str(path))
        return records if batch is None else _checked(batch, self._origin(path), records, self._split_outside)

    @functools.cached_property
    def _batches(self) -> dict[str, Batch]:
        return {b.location: b for log in self._located.logs.values() for b in log.batches}

    def pending(self) -> Any:
        """FileSource.pending, with the records found outside their batch's range."""
        return super().pending(), dict(self._split_outside.counts)

    def settle(self, other: Any) -> None:
        """FileSource.settle, adding both processes' records outside their batch's range."""
        tallies, outside = other
        for counts in (outside, self._split_outside.counts):
            for location, n in counts.items():
                self._outside.add(location, n)
        self._split_outside = OutsideCounter()
        super().settle(tallies)

    def coverage(self, seen: Mapping[str, Seen]) -> Coverage:
        """As stated with --data-covers; else a lake's log as its manifest says, a log of Logpush objects only
        as their names say; else inferred from the log's first and last record."""
        found = files_coverage(seen, self._covers)
        logs = dict(found.logs)
        for name, log in self._located.logs.items():
            if self._covers and name in self._covers:
                continue
            if log.lake is not None and read_logs(log.lake)[name].basis == "read":
                logs[name] = lake_coverage(name, tuple(Interval(a, b) for a, b in log.coverage()))
            elif log.batches and not log.files:
                logs[name] = logpush(name, tuple(Interval(a, b) for a, b in log.coverage()))
        return Coverage(logs)

    def notes(self) -> tuple[str, ...]:
        """Gaps in the Logpush objects' coverage of each rule's window, and records outside their batch."""
        out = []
        for r in self._plan.rules if self._plan is not None else ():
            for name in ({s.source for s in r.sides} if r.sides else {r.rule.source}):
                log = self._located.logs.get(name)
                note = coverage_note(log, r.since_us, r.until_us) if log is not None else None
                if note:
                    out.append(f"{r.rule.id}: {note}")
        return (*out, *self._outside.warnings())


def lake_records(lake: Path, source: str) -> Iterator[Timed]:
    """A lake's records of one log, in time order, as (t_us, record) as the export had them (Python engine)."""
    import duckdb

    from auditor.sources.relation import EXTRAS, ODD, lake_extras, parquet_relation

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


def _checked(batch: Batch, shown: str, records: Iterable[Timed], outside: OutsideCounter) -> Iterator[Timed]:
    lo, hi = batch.start_us, batch.holds_until_us
    for t_us, record in records:
        if not lo <= t_us < hi:
            outside.add(shown)
        yield t_us, record


def coverage_note(log: LogData, since_us: int, until_us: int) -> str | None:
    """A one-line description of what the Logpush names leave uncovered of [since, until), or None."""
    if not log.batches and log.lake is None:
        return None
    missing = gaps(log.coverage(), since_us, until_us)
    if not missing:
        return None
    shown = ", ".join(f"{format_time(a)}..{format_time(b)}" for a, b in missing[:3])
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    what = "data in the lake" if log.lake is not None else "Logpush object"
    return f"no {log.source} {what} covers {shown}{more}"

