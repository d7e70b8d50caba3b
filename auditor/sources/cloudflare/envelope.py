"""Reading one answer: the Cloudflare envelope, its records with their times, result_info, error messages."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from auditor.core.fields import SOURCES
from auditor.core.timeutil import parse_epoch, parse_time
from auditor.sources.records import upper_country


class FetchError(Exception):
    """A fetch could not be completed: says which records are missing and why (never a secret)."""


class Rejected(FetchError):
    """A 400: the API refused the query itself (a parameter it does not take)."""


class CredentialsRejected(FetchError):
    """401: the API did not accept the credentials; no fetch of the run can succeed, so the run stops."""


class Malformed(Exception):
    """A 2xx body that is not the envelope: retried (usually a cut transfer), then an error."""


@dataclass(frozen=True)
class Page:
    """One parsed answer: records with their times, and result_info totals when the server sent them."""

    number: int
    records: list[tuple[int, dict[str, Any]]]
    total_pages: int | None
    total_count: int | None

    def signature(self) -> str | None:
        """Identifies the page's content: a server that ignores `page` repeats it. None for a page whose first
        and last records are alike (one record, or a run of identical ones, which projected fields make
        likelier): such pages can legitimately repeat, so they prove nothing."""
        records = self.records
        first, last = (json.dumps(records[i][1], sort_keys=True, default=str) for i in (0, -1))
        return None if first == last else f"{len(records)}|{first}|{last}"


NOT_JSON = object()
TOO_DEEP = object()


def parse_json(body: bytes) -> Any:
    """The body as JSON, NOT_JSON, or TOO_DEEP (nested deeper than the parser's recursion allows)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return NOT_JSON
    except RecursionError:
        return TOO_DEEP


def masked(value: Any, scrub: Callable[[str], str]) -> Any:
    """A JSON value with `scrub` applied to every string in it (keys too), for records echoing a secret."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [masked(v, scrub) for v in value]
    if isinstance(value, dict):
        return {scrub(k): masked(v, scrub) for k, v in value.items()}
    return value


def kind(value: Any) -> str:
    """A JSON value's type in words, for messages."""
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def count(value: Any) -> int | None:
    """A non-negative integer from result_info, else None (an unusable total is ignored, not trusted)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def error_text(doc: Any, fallback: str, scrub: Callable[[str], str]) -> str:
    """Cloudflare's `errors` as `message (code); ...`, one line, scrubbed."""
    parts = []
    if isinstance(doc, dict) and isinstance(doc.get("errors"), list):
        for err in doc["errors"]:
            if isinstance(err, dict):
                code = err.get("code")
                message = str(err.get("message") or "").strip() or "error"
                parts.append(f"{message} ({code})" if code not in (None, "") else message)
    text = "; ".join(parts) or fallback or "no error message"
    return scrub(" ".join(text.split()))[:300]


def parse_page(doc: Any, number: int, source: str, where: str, scrub: Callable[[str], str]) -> Page:
    """Check the envelope and every record; Malformed for a body that is not the envelope."""
    if doc is NOT_JSON:
        raise Malformed("body is not valid JSON")
    if doc is TOO_DEEP:
        raise Malformed("body is nested too deeply to read")
    if not isinstance(doc, dict) or "success" not in doc:
        raise Malformed("body is not a Cloudflare API envelope")
    if doc["success"] is not True:
        raise FetchError(f"{where} (page {number}): the API answered success={json.dumps(doc['success'])}: "
                         f"{error_text(doc, 'no error given', scrub)}")
    result = doc.get("result")
    if result is None:
        result = []  # `result` is not required by the schema: missing or null is an empty page, as in the SDKs
    if not isinstance(result, list):
        raise Malformed(f"envelope's result is {kind(result)}, not a list of records")
    time_field = SOURCES[source].time_field
    country = "country" in SOURCES[source].fields  # read upper case, as from every source
    records = []
    for i, record in enumerate(result, 1):
        if not isinstance(record, dict):
            raise FetchError(f"{where} (page {number}): record {i} is {kind(record)}, not an object")
        raw: Any = record.get(time_field)
        try:
            t = parse_time(raw) if isinstance(raw, str) else parse_epoch(raw)
        except (ValueError, TypeError, OverflowError):
            raise FetchError(f"{where} (page {number}): record {i} has an invalid {time_field} "
                             f"{scrub(json.dumps(raw))[:60]} (expected an RFC 3339 timestamp)") from None
        records.append((t, upper_country(record) if country else record))
    info = doc.get("result_info")
    info = info if isinstance(info, dict) else {}
    return Page(number, records, count(info.get("total_pages")), count(info.get("total_count")))
