"""Logpush destination layout: object names, pruning by name, coverage from names."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from auditor.core.timeutil import US, parse_time
from auditor.sources.logpush import (
    Batch,
    LogpushError,
    OutsideCounter,
    batches_from_keys,
    covered,
    find_batches,
    gaps,
    is_logpush_folder,
    parse_object_name,
    prune,
)

T = parse_time


def test_object_name_gives_the_batch_range():
    assert parse_object_name("20261120T110000Z_20261120T110500Z_0a1b2c3d.log.gz") == (
        T("2026-11-20T11:00:00Z"), T("2026-11-20T11:05:00Z"))
    assert parse_object_name("20261120T110000Z_20261120T110500Z_0a1b2c3d.log") is not None


@pytest.mark.parametrize("name", [
    "20261120T110000Z_20261120T110500Z.log.gz",        # no hash
    "20261120T110000Z_20261120T110500Z_0a1b.json",     # not .log
    "20261340T110000Z_20261340T110500Z_0a1b.log.gz",   # no such date
    "20261120T110500Z_20261120T110000Z_0a1b.log.gz",   # ends before it starts
    "ownership-challenge-1a2b.txt",
])
def test_other_names_are_not_batches(name):
    assert parse_object_name(name) is None


def _write(folder: Path, date: str, name: str, records: list[dict]) -> Path:
    path = folder / date / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return path


def test_find_batches_reads_date_folders_in_time_order(tmp_path):
    _write(tmp_path, "20261121", "20261121T000000Z_20261121T000500Z_bbbb.log.gz", [])
    _write(tmp_path, "20261120", "20261120T110000Z_20261120T110500Z_aaaa.log.gz", [])
    (tmp_path / "ownership-challenge-1.txt").write_text("x")
    assert is_logpush_folder(tmp_path)
    found = find_batches(tmp_path)
    assert [Path(b.location).name[:16] for b in found] == ["20261120T110000Z", "20261121T000000Z"]
    assert found[0].date == "20261120"


def test_a_stray_file_in_a_date_folder_is_an_error_naming_it(tmp_path):
    _write(tmp_path, "20261120", "20261120T110000Z_20261120T110500Z_aaaa.log.gz", [])
    (tmp_path / "20261120" / "notes.txt").write_text("x")
    with pytest.raises(LogpushError, match=r"notes\.txt: error: not a Logpush batch object name"):
        find_batches(tmp_path)


def test_an_empty_folder_is_not_a_destination(tmp_path):
    assert not is_logpush_folder(tmp_path)
    with pytest.raises(LogpushError, match="no Logpush batch objects"):
        find_batches(tmp_path)


def _batch(start: str, end: str) -> Batch:
    return Batch(T(start), T(end), f"{start}_{end}")


def test_prune_keeps_only_batches_meeting_a_window():
    a = _batch("2026-11-20T11:00:00Z", "2026-11-20T11:05:00Z")
    b = _batch("2026-11-20T11:05:00Z", "2026-11-20T11:10:00Z")
    c = _batch("2026-11-21T00:00:00Z", "2026-11-21T00:05:00Z")
    window = (T("2026-11-20T11:06:00Z"), T("2026-11-20T12:00:00Z"))
    assert prune([a, b, c], [window]) == [b]
    # The end second is truncated in the name: a window starting in it still opens the batch.
    assert prune([a], [(T("2026-11-20T11:05:00.5Z"), T("2026-11-20T11:06:00Z"))]) == [a]
    assert prune([a], [(T("2026-11-20T11:05:01Z"), T("2026-11-20T11:06:00Z"))]) == []
    # A window ending exactly at a batch's start does not reach it.
    assert prune([b], [(T("2026-11-20T10:00:00Z"), T("2026-11-20T11:05:00Z"))]) == []


def test_names_are_coverage_and_a_missing_hour_is_a_gap():
    batches = [_batch("2026-11-20T10:00:00Z", "2026-11-20T10:05:00Z"),
               _batch("2026-11-20T10:05:00Z", "2026-11-20T11:00:00Z"),
               _batch("2026-11-20T12:00:00Z", "2026-11-20T13:00:00Z")]
    intervals = covered(batches)
    assert intervals == ((T("2026-11-20T10:00:00Z"), T("2026-11-20T11:00:00Z")),
                         (T("2026-11-20T12:00:00Z"), T("2026-11-20T13:00:00Z")))
    assert gaps(intervals, T("2026-11-20T10:00:00Z"), T("2026-11-20T13:00:00Z")) == (
        (T("2026-11-20T11:00:00Z"), T("2026-11-20T12:00:00Z")),)
    assert gaps(intervals, T("2026-11-20T09:00:00Z"), T("2026-11-20T10:30:00Z")) == (
        (T("2026-11-20T09:00:00Z"), T("2026-11-20T10:00:00Z")),)
    assert gaps(intervals, T("2026-11-20T12:10:00Z"), T("2026-11-20T12:20:00Z")) == ()


def test_batch_holds_its_end_second():
    b = _batch("2026-11-20T11:00:00Z", "2026-11-20T11:05:00Z")
    assert b.holds(T("2026-11-20T11:05:00.999999Z"))
    assert not b.holds(T("2026-11-20T11:05:01Z"))
    assert not b.holds(T("2026-11-20T11:00:00Z") - 1)
    assert b.holds_until_us == T("2026-11-20T11:05:00Z") + US


def test_bucket_keys_follow_the_same_rules():
    keys = ["logs/ownership-challenge-1.txt", "logs/20261120/20261120T110000Z_20261120T110500Z_aa.log.gz",
            "logs/20261120/20261120T100000Z_20261120T110000Z_bb.log.gz"]
    found = batches_from_keys(keys, "logs")
    assert [b.location for b in found] == [keys[2], keys[1]]
    with pytest.raises(LogpushError, match="not a Logpush batch object name"):
        batches_from_keys([*keys, "logs/20261120/junk.csv"], "logs")


def test_outside_records_are_counted_per_object():
    counter = OutsideCounter()
    counter.add("b.log.gz")
    counter.add("a.log.gz")
    counter.add("b.log.gz")
    assert counter.warnings() == [
        "a.log.gz: 1 record outside the batch's time range in its name (kept and evaluated; the name's coverage "
        "may be wrong)",
        "b.log.gz: 2 records outside the batch's time range in its name (kept and evaluated; the name's coverage "
        "may be wrong)",
    ]
