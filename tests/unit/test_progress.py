"""What the progress line says (auditor.cli.progress), from the client's events and the --data reader's reports.

How a terminal shows it (width, redraws, erasing) is tested through the CLI in
tests/integration/test_progress_terminal.py.
"""

from __future__ import annotations

import io

from auditor.cli.progress import ApiProgress, Display, FilesProgress, fetch_name, wait_text
from auditor.core.timeutil import parse_time
from auditor.sources.cloudflare.events import (
    FellBack,
    FetchDone,
    FetchesExpected,
    FetchStarted,
    PageRead,
    RangeRead,
    RetryWait,
)

NOV_1, NOV_15 = parse_time("2026-11-01T00:00:00Z"), parse_time("2026-11-15T00:00:00Z")
DAY = parse_time("2026-11-02T00:00:00Z") - NOV_1


class Ticks:
    """A display clock that only moves when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def api(fetches: int = 2) -> tuple[ApiProgress, io.StringIO, Ticks]:
    out, ticks = io.StringIO(), Ticks()
    return ApiProgress(Display(out, live=False, clock=ticks), fetches), out, ticks


def test_fetches_are_named_by_log_and_range_as_briefly_as_can_be_said():
    assert fetch_name("access_requests", NOV_1, NOV_15) == "access_requests 2026-11-01 → 11-15"
    # Fetches reach a second past their rules' windows: named to the minute.
    assert fetch_name("scim_updates", parse_time("2026-11-14T11:59:59Z"), parse_time("2026-11-15T12:00:01Z"),
                      unicode=False) == "scim_updates 2026-11-14 12:00 -> 11-15 12:00"
    assert fetch_name("x", parse_time("2026-11-15T10:00:00Z"), parse_time("2026-11-15T12:30:00Z")) == \
        "x 2026-11-15 10:00 → 12:30"
    assert fetch_name("x", parse_time("2026-12-01T00:00:00Z"), parse_time("2027-01-01T00:00:00Z")) == \
        "x 2026-12-01 → 2027-01-01"


def test_rate_limit_waits_are_said_in_full_when_long_and_briefly_when_short():
    assert wait_text(252, 2, 5) == "Cloudflare rate limit: waiting 4m 12s (retry 2 of 5)"
    assert wait_text(3, 2, 5) == "rate limited, retrying in 3 s (2/5)"
    assert wait_text(2.01, 2, 5) == "rate limited, retrying in 3 s (2/5)"  # a countdown rounds up


def test_the_share_of_the_time_ranges_read_and_an_eta():
    progress, _, ticks = api()
    progress(FetchStarted("a:1", "access_requests", NOV_1, NOV_15))
    assert progress.line() == "0% · access_requests 2026-11-01 → 11-15 · 0/2 fetches · 0 records"
    ticks.now = 10.0
    progress(PageRead("a:1", 1000))
    progress(RangeRead("a:1", NOV_1, NOV_1 + 7 * DAY))  # half of one of two fetches: a quarter of the run
    assert progress.fraction() == 0.25
    assert progress.line() == "25% (ETA 30s) · access_requests 2026-11-01 → 11-15 · 0/2 fetches · 1,000 records"
    progress(RangeRead("a:1", NOV_1 + 7 * DAY, NOV_15))
    progress(FetchDone("a:1"))
    assert progress.line().startswith("50% (ETA 10s) · access_requests 2026-11-01 → 11-15 · 1/2 fetches")


def test_a_re_planned_run_counts_the_fetches_it_now_makes():
    progress, _, _ = api(3)
    progress(FetchStarted("s:1", "scim_updates", NOV_1, NOV_15))
    progress(FetchDone("s:1"))
    progress(FetchesExpected(2))  # the correlation `then` sides were re-planned into one fetch
    assert progress.line().startswith("50% ") and "1/2 fetches" in progress.line()


def test_a_wait_leads_the_line_and_ticks_down_until_its_fetch_reads_again():
    progress, out, ticks = api()
    progress(FetchStarted("a:1", "access_requests", NOV_1, NOV_15))
    progress(RetryWait("a:1", 299, 1, 4, "429 (rate limited)", rate_limited=True))
    assert progress.line().startswith("Cloudflare rate limit: waiting 4m 59s (retry 1 of 4) · 0% · 0/2 fetches")
    ticks.now = 47.0
    assert progress.line().startswith("Cloudflare rate limit: waiting 4m 12s (retry 1 of 4)")
    progress(PageRead("a:1", 10))
    assert progress.line().startswith("0% · access_requests")
    # No live line (not a terminal): the wait was said once, on a line of its own.
    assert out.getvalue() == "Cloudflare rate limit: waiting 4m 59s (retry 1 of 4)\n"
    progress(RetryWait("a:1", 2, 1, 4, "503 Service Unavailable"))
    assert progress.line().startswith("retrying in 2 s (1/4) after 503 Service Unavailable · 0%")
    assert out.getvalue().count("\n") == 1  # a server error's short retry is not worth a line of its own


def test_a_fetch_read_again_without_refused_parameters_starts_over_under_its_own_name():
    progress, out, _ = api(1)
    progress(FetchStarted("a:1", "access_requests", NOV_1, NOV_15))
    progress(RangeRead("a:1", NOV_1, NOV_1 + 7 * DAY))
    progress(FellBack("a:1", ("allowed",), "a:2"))
    progress(FellBack("a:1", ("allowed",), "a:2"))
    assert progress.fraction() == 0
    progress(RangeRead("a:2", NOV_1, NOV_1 + 7 * DAY))
    assert progress.line().startswith("50% (ETA ") and "access_requests 2026-11-01 → 11-15" in progress.line()
    assert out.getvalue().count("refused a query (400): reading it again without allowed") == 1


def test_data_runs_count_files_bytes_and_records():
    out = io.StringIO()
    files = FilesProgress(Display(out, live=False), 2, 3_000_000)
    files("data/access_requests.ndjson.gz", 0, 65_536, False)
    assert files.line() == "reading data/access_requests.ndjson.gz · 0/2 files (0 B of 3.0 MB) · 65,536 records"
    files("data/access_requests.ndjson.gz", 1_500_000, 70_000, True)
    files("data/scim_updates.ndjson", 0, 1, False)
    assert files.line() == "reading data/scim_updates.ndjson · 1/2 files (1.5 MB of 3.0 MB) · 70,001 records"
    assert out.getvalue() == ""  # nothing drawn without a terminal
