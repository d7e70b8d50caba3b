"""Template filters about results: numbers, measurements and headlines, rule order, counts, waivers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from markupsafe import Markup, escape

from auditor.core.status import Severity, Status
from auditor.language import expectations
from auditor.language.expectations import KINDS, Bounds, bounds_text, format_number, group_label

# An e-mail address or a UUID: a browser would break them at a hyphen, so HTML keeps each on one line.
_WHOLE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b")


def unbroken(text: Any) -> Markup:
    """HTML: the text escaped, each e-mail address and UUID in it kept on one line (`<span class="nobr">`)."""
    text = str(text)
    pieces, start = [], 0
    for match in _WHOLE.finditer(text):
        pieces += [escape(text[start:match.start()]), Markup('<span class="nobr">{}</span>').format(match.group(0))]
        start = match.end()
    return Markup("").join([*pieces, escape(text[start:])])


def thousands(value: Any) -> str:
    """Integer with thousands separators (45,120)."""
    return f"{int(value):,}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def measure(measurement: dict) -> str:
    """Measured vs threshold: 'count 47 > max 5', 'ratio 0.31 > max 0.2', 'count 3 (min 1, max 5)'."""
    name = KINDS[measurement["expectation"]].label(measurement.get("field"), compact=True)
    value, low, high = measurement["value"], measurement.get("min"), measurement.get("max")
    if value is None:
        return f"{name} not measured" + _bounds(low, high)
    if not measurement["ok"]:
        if high is not None and value > high:
            return f"{name} {format_number(value)} > max {format_number(high)}"
        if low is not None and value < low:
            return f"{name} {format_number(value)} < min {format_number(low)}"
    return f"{name} {format_number(value)}" + _bounds(low, high)


def _bounds(low: Any, high: Any) -> str:
    text = bounds_text(low, high)
    return f" ({text})" if text else ""


def worst(result: dict) -> dict | None:
    """The measurement to headline: the one the result message names (auditor.language.expectations.worst)."""
    return expectations.worst(result["measurements"], _bounds_of)


def _bounds_of(measurement: dict) -> Bounds:
    return measurement["ok"], measurement["value"], measurement.get("min"), measurement.get("max")


def failing(measurements: Iterable[dict]) -> list[dict]:
    """Only the measurements that did not hold."""
    return [m for m in measurements if not m["ok"]]


def headline(result: dict) -> str:
    """One-line outcome of a rule: worst measurement, its group, and how many other groups failed; a rule
    still failing with some groups waived leads with an unwaived group and says how many were waived."""
    waived = [m for m in result["measurements"] if m.get("waived")]
    if waived:
        return _partly_waived(result, waived)
    top = worst(result)
    if top is None:
        return ""
    text = measure(top)
    label = group_label(top["group"])
    if top["ok"]:
        # A passing grouped rule reports the group nearest its bound: the one closest to failing.
        return text + (f" (nearest: {label})" if label else "")
    if label:
        text += f" ({label})"
    others = result["violations"] - 1
    if others > 0:
        text += f" +{others} more group{'s' if others != 1 else ''}"
    return text


def _partly_waived(result: dict, waived: list[dict]) -> str:
    shown = {**result, "measurements": [m for m in result["measurements"] if not m.get("waived")]}
    groups = {repr(sorted((m["group"] or {}).items())): m["waived"] for m in waived}
    shown["violations"] = result["violations"] - len(groups)
    tickets = ", ".join(dict.fromkeys(groups.values()))
    text = headline(shown)
    return f"{text}; {len(groups)} group{'s' if len(groups) != 1 else ''} waived ({tickets})"


def ordered(results: list[dict]) -> list[dict]:
    """Rules for reading: errors, failures, waived, passes; then by severity; then as given."""

    def rank(pair: tuple[int, dict]) -> tuple[int, int, int]:
        index, result = pair
        return -Status(result["status"]).rank, -Severity(result["severity"]).rank, index

    return [result for _, result in sorted(enumerate(results), key=rank)]


def by_severity(results: list[dict]) -> list[dict]:
    """Status counts per severity, most severe first: [{'severity', 'total', 'pass', 'fail', ...}]."""
    rows = []
    for severity in Severity.most_severe_first():
        counts = {status.value: 0 for status in Status}
        for result in results:
            if result["severity"] == severity:
                counts[result["status"]] += 1
        rows.append({"severity": severity.value, "total": sum(counts.values()), **counts})
    return rows


def waiver_notes(results: dict, rule_id: str) -> str:
    """The waivers of one rule on one line: 'expired SEC-140 (expires 2026-11-01, 0 records); ...'."""
    notes = []
    for w in results.get("waivers") or ():
        if w.get("rule") == rule_id:
            label = w.get("ticket") or w.get("owner")
            notes.append(f"{w.get('state')} {label} (expires {w.get('expires')}, {w.get('records')} records)")
    return "; ".join(notes)


# Query parameters that say how to page and project, not which records: left out of a readable fetch.
_PAGING = frozenset({"since", "until", "per_page", "page", "limit", "direction", "fields"})


def readable_fetch(fetch: str) -> str:
    """A result's fetch for people: `access_requests 2026-11-14T09:00:00Z → 2026-11-15T09:00:00Z where
    allowed=false, user_email=a@x.com` instead of the URL-encoded query; `files ...` and others as they are."""
    return "; ".join(_readable_part(part) for part in fetch.split("; "))


def _readable_part(part: str) -> str:
    label, sep, rest = part.partition(": ")
    if sep and label in ("first", "then"):
        return f"{label}: {_readable_part(rest)}"
    if not part.startswith("GET "):
        return part
    url = urlsplit(part[4:])
    source = "scim_updates" if url.path.endswith("/scim/updates") else url.path.rstrip("/").rsplit("/", 1)[-1]
    params = parse_qsl(url.query, keep_blank_values=True)
    values = dict(params)
    span = f" {values['since']} → {values['until']}" if "since" in values and "until" in values else ""
    # The API pairs some filters with an operator (`allowed=false&allowedOp=eq`): shown as `=` or `!=`.
    where = [f"{k}{'!=' if values.get(k + 'Op') == 'neq' else '='}{v}" for k, v in params
             if k not in _PAGING and not (k.endswith("Op") and k[:-2] in values)]
    return f"{source}{span}" + (f" where {', '.join(where)}" if where else "")
