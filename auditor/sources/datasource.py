"""`run --data`: reading what `auditor.sources.locate` found (plain export files, Logpush folders, a Parquet lake,
objects fetched from object storage), reading only the objects some rule's window needs."""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from auditor.compile.plan import Fetch, Plan
from auditor.core.coverage import Coverage, Interval, Seen, files_coverage, logpush
from auditor.core.coverage import lake as lake_coverage
from auditor.core.diagnostics import display_path
from auditor.core.provenance import FileRecord
from auditor.core.timeutil import format_time
from auditor.sources.base import Block, Part, SourceError, Timed
from auditor.sources.files import FileSource, file_part
from auditor.sources.lake import LakeLog, days_needed, lake_records, read_logs
from auditor.sources.lake import write_manifest as write_lake_manifest
from auditor.sources.locate import Location, LogData, locate, windows
from auditor.sources.logpush import Batch, OutsideCounter, gaps, within_batch
from auditor.sources.objects import ObjectStoreError, connect, download


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
            yield self._counted(path, file_part(path, fetch.source, keep_logpush=True))
        for batch in log.batches:
            part = file_part(Path(batch.location), fetch.source, keep_logpush=True)
            shown = self._shown.get(Path(batch.location), part.origin)
            checked = dataclasses.replace(part, origin=shown,
                                          records=within_batch(batch, shown, part.records, self._outside))
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
        return records if batch is None else within_batch(batch, self._origin(path), records, self._split_outside)

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
            for name in dict.fromkeys(s.source for s in r.sides) if r.sides else (r.rule.source,):  # sides' order
                log = self._located.logs.get(name)
                note = coverage_note(log, r.since_us, r.until_us) if log is not None else None
                if note:
                    out.append(f"{r.rule.id}: {note}")
        return (*out, *self._outside.warnings())


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

