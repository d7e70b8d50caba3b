"""Pagination of one part: which pages to ask for next, when the answer has ended, and what it proves.

Pages are asked a few at a time (more only when the pages seen show more are surely coming), never past
the page where `limit` is reached (a later page is necessarily empty). A page repeating an earlier one
means the server ignores `page`: an error, not a loop.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from auditor.sources.cloudflare.envelope import FetchError, Page
from auditor.sources.cloudflare.parts import Ask, PartRead


@dataclass(frozen=True)
class PagesState:
    """What the pages fetched so far of one part prove."""

    complete: int  # pages 1..complete all arrived with records
    ended: bool  # page complete+1 arrived empty
    received: int  # records on all pages that arrived
    page_size: int  # the server's page size (largest page seen): it may cap per_page silently
    lower_bound: int  # records the part surely holds, from the furthest page with records
    first_empty: float  # the first page known to be empty (inf if none)
    beyond: int | None  # a page with records after the empty page that ended pagination

    @staticmethod
    def of(got: dict[int, Page]) -> PagesState:
        """Summarise the pages fetched so far."""
        complete = 0
        while complete + 1 in got and got[complete + 1].records:
            complete += 1
        ended = complete + 1 in got
        size = max(len(p.records) for p in got.values()) or 1
        filled = sorted(n for n, p in got.items() if p.records and n > complete)
        empty = [n for n, p in got.items() if not p.records]
        lower = max(((n - 1) * size + len(p.records) for n, p in got.items() if p.records), default=0)
        return PagesState(
            complete=complete, ended=ended, received=sum(len(p.records) for p in got.values()), page_size=size,
            lower_bound=lower, first_empty=min(empty, default=math.inf),
            beyond=filled[0] if filled and ended else None,
        )


def ascending(records: list[tuple[int, Any]]) -> bool:
    """Whether (time, record) pairs are in ascending time order."""
    return not any(a[0] > b[0] for a, b in itertools.pairwise(records))


class PageReader:
    """Reads pages of one part into `read.got`, a batch at a time; FetchError when pages repeat."""

    def __init__(self, read: PartRead, submit: Callable[[int], Future[Page]]) -> None:
        self._read = read
        self._submit = submit
        self._seen: dict[str, int] = {}

    def __call__(self, numbers: Iterable[int]) -> None:
        """Fetch these pages (in parallel) and keep them."""
        futures = [self._submit(n) for n in numbers]
        try:
            for f in futures:
                page = f.result()
                self._read.got[page.number] = page
                signature = page.signature() if page.records else None
                if signature is not None:
                    other = self._seen.setdefault(signature, page.number)
                    if other != page.number:
                        raise FetchError(f"{self._read.where}: pages {other} and {page.number} hold the same "
                                         "records; the API seems to ignore `page`, so the data cannot be completed")
        finally:
            for f in futures:
                f.cancel()

    def probe(self, number: int, alike: int) -> None:
        """FetchError when page `number`, past the page where `limit` is reached, holds records: the server
        repeats one page whatever `page` asks (the `alike` pages before it were all the same)."""
        page = self._submit(number).result()
        if page.records:
            raise FetchError(f"{self._read.where}: pages 1 to {alike} hold the same records and page {number}, past "
                             f"limit={self._read.limit}, still has records; the API seems to ignore `page`, so the "
                             "data cannot be completed")


def paginate(read: PartRead, pages: PageReader, concurrency: int) -> PagesState:
    """Read pages after page 1 until the answer ends or reaches `limit`; the state they prove."""
    probed = False
    while True:
        state = PagesState.of(read.got)
        if state.lower_bound >= read.limit or state.ended:
            return state  # an answer ends only on an empty page: result_info is a cross-check, not an end
        if not probed and _alike(read.got, state.complete):
            # Pages alike in every record (signatures cannot tell them apart): a burst of identical events, or
            # a server ignoring `page`. A page past the one where `limit` is reached settles it at once.
            probed = True
            pages.probe(math.ceil(read.limit / state.page_size) + 1, state.complete)
        pages(_next_pages(read, state, concurrency))


ALIKE_PAGES = 3  # this many pages in a row with the same content get a probe past `limit`


def _alike(got: dict[int, Page], complete: int) -> bool:
    """Whether the last ALIKE_PAGES complete pages (and every page before) hold the same records."""
    if complete < ALIKE_PAGES:
        return False
    first = got[1].records
    return all(got[n].records == first for n in range(2, complete + 1))


def _next_pages(read: PartRead, state: PagesState, concurrency: int) -> list[int]:
    """The page numbers to ask for next."""
    got = read.got
    # A page past the one where `limit` is reached is necessarily empty, so it is not asked for in advance;
    # where that page lies is known only while the pages are one size.
    uniform = all(len(got[n].records) == state.page_size for n in range(1, state.complete))
    last_page = math.ceil(read.limit / state.page_size) if uniform else math.inf
    # Not past the limit page; but a short limit page still needs the (empty) next one to end on.
    stop = last_page + 1 if state.complete < last_page else state.complete + 2
    total_pages = got[1].total_pages
    if total_pages is not None and state.complete < total_pages:
        # The announced pages and the empty one after them, at once: result_info saves round trips only.
        return list(range(state.complete + 1, int(min(total_pages + 2, stop))))
    window = _window(got, state, estimate(got, read.ask, state), read.job.ask, concurrency)
    return list(range(state.complete + 1, int(min(state.first_empty, state.complete + 1 + window, stop))))


def check_ended(read: PartRead, state: PagesState) -> None:
    """FetchError when the pages that ended an answer contradict each other or result_info (a cross-check:
    the server said how many records or pages there are, and that is not what arrived)."""
    if state.beyond:
        raise FetchError(f"{read.where}: page {state.beyond} has records after the empty page "
                         f"{state.complete + 1}; the pagination is inconsistent")
    first = read.got[1]
    if first.total_count is not None and state.received != first.total_count:
        raise FetchError(f"{read.where}: the API announced {first.total_count} records (result_info.total_count) "
                         f"but pagination ended on an empty page after {state.received}; the data is inconsistent")
    if first.total_pages is not None and state.received and state.complete != first.total_pages:
        raise FetchError(f"{read.where}: the API announced {first.total_pages} pages (result_info.total_pages) "
                         f"but pagination ended on an empty page after {state.complete}; the data is inconsistent")


def estimate(got: dict[int, Page], ask: Ask, state: PagesState) -> float | None:
    """Records expected in the whole range, from how far the asc-ordered pages got; None if unordered."""
    last_time = None
    for n in sorted(got):
        for t, _ in got[n].records:
            if last_time is not None and t < last_time:
                return None  # not in ascending order: the server ignores `direction`, no estimate
            last_time = t
    furthest = max((n for n, p in got.items() if p.records), default=None)
    if furthest is None or last_time is None or last_time <= ask.since_us:
        return None
    position = (furthest - 1) * state.page_size + len(got[furthest].records)
    return position * (ask.until_us - ask.since_us) / (last_time - ask.since_us)


def _window(got: dict[int, Page], state: PagesState, expected_total: float | None, fetch: Ask,
            concurrency: int) -> int:
    """How many pages to ask for next when the total is unknown: more only when more are surely coming (the
    caller never goes past the page where `limit` is reached)."""
    last = len(got[state.complete].records)
    if expected_total is None or last < state.page_size or (state.complete == 1 and last < fetch.per_page):
        return 1  # a short page is probably the last: ask only for the (likely empty) next one
    # Half the pages the estimate expects: traffic varies by hour, and a page past the end is wasted.
    expected = (expected_total - state.received) / state.page_size
    return max(1, min(concurrency, int(expected / 2) + 1))
