"""`auditor sync`: copy the API's logs into a Parquet log lake, incrementally, idempotently, complete or not at all.

Each log is read as one fetch over [since, until) through the same client as `run` (pagination, retries,
rate limits and the completeness checks of docs/guarantees.md), into NDJSON scratch files inside the lake's
hidden staging folder. Only when every log was read completely are the records the lake lacks written
(auditor.sources.lake.append: new part files, renamed into place) and then the manifest, last: a sync that
stops earlier (a fetch error, Ctrl-C, a crash) leaves the lake as it was, its stray files never read.

Incremental: a log resumes `OVERLAP_US` before the end of what the lake covers (records that arrived late are
picked up, duplicates are not written), never before what the API still keeps: the manifest's coverage is
only ever what was read, so a gap between syncs (or past retention) stays a gap that `run` reports.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.compile.plan import Fetch, PushedFilter
from auditor.core.coverage import DEFAULT_RETENTION_DAYS, Interval, api_coverage, union
from auditor.core.fields import SOURCES
from auditor.core.model import Config
from auditor.core.timeutil import US, format_time
from auditor.sources.cloudflare.client import ApiClient
from auditor.sources.cloudflare.envelope import CredentialsRejected, FetchError
from auditor.sources.lake import (
    STAGING,
    LakeLog,
    append,
    check_target,
    files,
    read_logs,
    tidy,
    write_manifest,
)

OVERLAP_US = 3600 * US  # re-read the last hour the lake covers: records the API serves late


class SyncError(Exception):
    """The sync could not complete; the lake is unchanged. str() is one line naming what to do."""


@dataclass(frozen=True)
class LogSync:
    """What one log's sync read and added, and what the lake covers of it now."""

    source: str
    since_us: int
    until_us: int
    fetched: int
    added: int
    covered: tuple[tuple[int, int], ...]
    note: str | None = None  # why the log was not read (nothing new, or not syncable)

    def to_json(self) -> dict[str, Any]:
        """The log's entry in `sync --json`."""
        return {"since": format_time(self.since_us), "until": format_time(self.until_us), "fetched": self.fetched,
                "added": self.added, "covered": [[format_time(a), format_time(b)] for a, b in self.covered],
                "note": self.note}

    def line(self) -> str:
        """One line of the text summary."""
        spans = ", ".join(f"{format_time(a)}..{format_time(b)}" for a, b in self.covered) or "nothing"
        read = (f"read {format_time(self.since_us)}..{format_time(self.until_us)}: {self.fetched} records, "
                f"{self.added} new" if self.note is None else self.note)
        return f"{self.source}: {read}; the lake covers {spans}"


@dataclass(frozen=True)
class SyncResult:
    """A finished sync: per log, what was read and added."""

    lake: Path
    logs: tuple[LogSync, ...]

    def to_json(self) -> dict[str, Any]:
        """`sync --json`."""
        return {"lake": str(self.lake), "logs": {log.source: log.to_json() for log in self.logs},
                "added": sum(log.added for log in self.logs)}


@dataclass(frozen=True)
class Span:
    """What one log's sync asks for: the fetch, or the reason there is none."""

    source: str
    since_us: int
    until_us: int
    fetch: Fetch | None
    note: str | None = None


def spans(held: Mapping[str, LakeLog], config: Config, now_us: int, since_us: int | None, until_us: int | None,
          retention_days: int = DEFAULT_RETENTION_DAYS) -> list[Span]:
    """Per log, the range to read: from `since_us` (else OVERLAP_US before the lake's end, else the start of the
    API's retention), never before what the API keeps, to `until_us` (else now), never after now."""
    kept = api_coverage(SOURCES, now_us, retention_days)
    out = []
    for source in SOURCES:
        api_from = kept.logs[source].covered[0].since_us
        log = held.get(source)
        end = max((b for _, b in log.covered), default=None) if log is not None else None
        lo = since_us if since_us is not None else (end - OVERLAP_US if end is not None else api_from)
        lo, hi = max(lo, api_from), min(until_us if until_us is not None else now_us, now_us)
        filters: tuple[PushedFilter, ...] = ()
        note = None
        if "idp_id" in SOURCES[source].requires:
            ids = tuple(sorted(config.scim_idp_ids))
            if not ids:
                note = f"not read: the {source} endpoint needs IdP ids; list them as scim_idp_ids in auditor.yaml"
            elif log is not None and log.idp_ids is not None and log.idp_ids != ids:
                raise SyncError(f"the lake's {source} hold IdPs {', '.join(log.idp_ids)} but scim_idp_ids lists "
                                f"{', '.join(ids)}: sync into a new lake (--to) so its coverage stays true")
            filters = (PushedFilter("idp_id", tuple(("idp_id", i) for i in ids), array=True),)
        if note is None and lo >= hi:
            note = "nothing to read: the lake is current (or --since/--until leave no time the API keeps)"
        fetch = None if note else Fetch(source=source, since_us=lo, until_us=hi, filters=filters)
        out.append(Span(source, lo, hi, fetch, note))
    return out


def sync(lake: Path, client: ApiClient, config: Config, now_us: int, since_us: int | None = None,
         until_us: int | None = None) -> SyncResult:
    """Read every log's new range completely, then add what the lake lacks and write the manifest (last)."""
    try:
        check_target(lake)
        lake.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        raise SyncError(str(exc).replace(": error: ", ": ", 1)) from None
    with _only_sync(lake):
        try:
            held = read_logs(lake)
        except ValueError as exc:
            raise SyncError(str(exc).replace(": error: ", ": ", 1)) from None
        return _sync(lake, held, client, config, now_us, since_us, until_us)


@contextmanager
def _only_sync(lake: Path) -> Iterator[None]:
    """Hold the lake's lock for the sync: a second sync into it at once is refused (POSIX; released when
    the process ends, however it ends)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; run one sync at a time
        yield
        return
    with (lake / ".sync.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SyncError(f"{lake}: another sync is writing this lake; wait for it to end") from None
        yield


def _sync(lake: Path, held: Mapping[str, LakeLog], client: ApiClient, config: Config, now_us: int,
          since_us: int | None, until_us: int | None) -> SyncResult:
    tidy(lake)  # what an interrupted sync left
    todo = spans(held, config, now_us, since_us, until_us, config.retention_days)
    client.expect_fetches(sum(1 for s in todo if s.fetch is not None))
    scratch = lake / f"{STAGING}{uuid.uuid4().hex}"
    scratch.mkdir()
    try:
        fetched = {s.source: _fetch(client, s.fetch, i, scratch) for i, s in enumerate(todo) if s.fetch is not None}
        logs = dict(held)
        done = []
        for s in todo:
            old = held.get(s.source)
            if s.fetch is None:
                done.append(LogSync(s.source, s.since_us, s.until_us, 0, 0, old.covered if old else (), s.note))
                continue
            path, count = fetched[s.source]
            new_files, added = append(lake, s.source, [path], old)
            cover = tuple((i.since_us, i.until_us) for i in union(
                [Interval(a, b) for a, b in (old.covered if old else ())] + [Interval(s.since_us, s.until_us)]))
            listed = (old.files if old and old.files is not None else _all(lake, s.source, old)) + new_files
            ids = tuple(sorted(config.scim_idp_ids)) if "idp_id" in SOURCES[s.source].requires else None
            # A lake copied from exports knows its coverage only from its records: so does what it becomes.
            logs[s.source] = LakeLog(cover, listed, ((old.records or 0) if old else 0) + added, ids,
                                     old.basis if old else "read")
            done.append(LogSync(s.source, s.since_us, s.until_us, count, added, cover))
        write_manifest(lake, logs)  # last: only now do readers see the new files
        return SyncResult(lake, tuple(done))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _all(lake: Path, source: str, old: LakeLog | None) -> tuple[str, ...]:
    """The files of a log whose manifest listed none (a lake written before it did): every part file."""
    return tuple(p.relative_to(lake).as_posix() for p in files(lake, source)) if old is not None else ()


def _fetch(client: ApiClient, fetch: Fetch, index: int, scratch: Path) -> tuple[Path, int]:
    """Read one fetch completely into an NDJSON scratch file; SyncError when the API cannot deliver it all."""
    path = scratch / f"{fetch.source}.ndjson"
    count = 0
    try:
        with path.open("w", encoding="utf-8") as out:
            for _, records in client.timed_stream(fetch, index):
                for _, record in records:
                    out.write(json.dumps(record, separators=(",", ":")) + "\n")
                count += len(records)
    except CredentialsRejected:
        raise
    except FetchError as exc:
        raise SyncError(f"{fetch.source}: {exc}; the lake is unchanged (sync again to retry)") from None
    return path, count
