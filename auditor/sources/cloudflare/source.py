"""The Cloudflare API as a record Source: one unit per fetch, read concurrently by the API client."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from auditor.core import timeutil
from auditor.core.coverage import DEFAULT_RETENTION_DAYS, Coverage, Seen, api_coverage
from auditor.core.fields import SOURCES
from auditor.sources.base import BaseSource, DataMissing, Part
from auditor.sources.cloudflare.client import ApiClient
from auditor.sources.cloudflare.envelope import CredentialsRejected, FetchError

if TYPE_CHECKING:
    from auditor.compile.plan import Fetch
    from auditor.core.provenance import RequestRecord


class CloudflareSource(BaseSource):
    """Adapts `ApiClient.timed_stream` (records with the times it parsed) to the Source protocol."""

    kind = "api"
    narrows = True  # fetching a `then` side only where it can match saves requests

    def __init__(self, client: ApiClient, retention_days: int = DEFAULT_RETENTION_DAYS,
                 measured_from: Mapping[str, int] | None = None) -> None:
        self.client = client
        self.concurrency = client.concurrency
        # Coverage: the API keeps `retention_days` (auditor.yaml), or serves from what an `auditor doctor`
        # profile measured (`measured_from`: log -> earliest instant served); "now" is read when asked.
        self.retention_days = retention_days
        self.measured_from = measured_from

    def unit(self, fetch: Fetch) -> str:
        """Each fetch is its own query."""
        return fetch.key

    def read(self, fetch: Fetch, index: int) -> Iterator[Part]:
        """The fetch's verified parts; DataMissing when the API cannot deliver them all."""
        try:
            for origin, records in self.client.timed_stream(fetch, index):
                yield Part(origin, records)
        except CredentialsRejected:
            raise  # not one fetch's problem: the run stops (auditor run prints one error line)
        except FetchError as exc:
            raise DataMissing(str(exc)) from None

    def expect(self, fetches: int) -> None:
        """Tell the progress display how many fetches the run now makes."""
        self.client.expect_fetches(fetches)

    def cancel(self) -> None:
        """Requests and waits give up, so the run ends quickly (Ctrl-C)."""
        self.client.cancel()

    def requests(self) -> tuple[RequestRecord, ...]:
        """Every request made, in plan order."""
        return self.client.requests()

    def coverage(self, seen: Mapping[str, Seen]) -> Coverage:
        """Each log from now - retention (or as measured) to now: older records are gone, newer do not exist."""
        return api_coverage(SOURCES, timeutil.now_us(), self.retention_days, self.measured_from)

    def describe(self, fetch: Fetch, account_id: str | None) -> str:
        """The request the fetch is read with."""
        return self.client.describe(fetch)

    def read_as(self, fetch: Fetch) -> str | None:
        """The query used instead when the API refused the planned one (400), for the results' `fetch`."""
        return self.client.fallbacks().get(fetch.key)
