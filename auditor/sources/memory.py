"""Records held in memory (`auditor test`'s cases): checked like a file's records, then read from the lists."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from auditor.core.coverage import COMPLETE, Coverage, Seen
from auditor.core.fields import SOURCES
from auditor.sources.base import BaseSource, DataError, Part, Timed
from auditor.sources.records import Normalizer

if TYPE_CHECKING:
    from auditor.compile.plan import Fetch


class MemorySource(BaseSource):
    """Lists of records per log source; a log source without a list has no records. A data error names the
    record by its position in its list (`<records>/access_requests:2`)."""

    kind = "files"  # evaluated exactly as exported files are

    def __init__(self, records: Mapping[str, Sequence[dict[str, Any]]], origin: str = "<records>") -> None:
        self._records = records
        self._origin = origin

    def coverage(self, seen: Mapping[str, Seen]) -> Coverage:
        """Complete: the records given are all there is (a rule test's case)."""
        return COMPLETE

    def describe(self, fetch: Fetch, account_id: str | None) -> str:
        """The case's records of the fetch's log source."""
        return f"{len(self._records.get(fetch.source, ()))} {fetch.source} records of {self._origin}"

    def read(self, fetch: Fetch, index: int) -> Iterator[Part]:
        """The log source's records, each with its time."""
        where = f"{self._origin}/{fetch.source}"
        normalize = Normalizer(SOURCES[fetch.source], lambda line, message: DataError(where, line, message))

        def timed() -> Iterator[Timed]:
            for number, record in enumerate(self._records.get(fetch.source, ()), 1):
                yield normalize(record, number)

        yield Part(where, timed())
