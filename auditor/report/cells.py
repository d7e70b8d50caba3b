"""Template filters that put one value into one format safely: table cells, Markdown, CSV, SARIF, URIs."""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

from auditor.core.status import Severity

_SARIF_LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "note",
                Severity.INFO: "note"}
_PLAIN_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")
_MD_LEADING = re.compile(r"^(\d*)([-+.)])")


def columns(records: Iterable[dict]) -> list[str]:
    """Union of the records' keys, in order of first appearance."""
    seen: dict[str, None] = {}
    for record in records:
        for key in record:
            seen.setdefault(key, None)
    return list(seen)


def cell(value: Any) -> str:
    """A JSON value for display: strings as-is, null empty, the rest as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def duration(seconds: Any) -> str:
    """A delay in seconds as '1d 4h 13m 5s' (whole seconds; '0s' for less than one)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return cell(seconds)
    rest = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size or (unit == "s" and not parts):
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return " ".join(parts)


def field_lines(record: Any) -> str:
    """A record as 'field: value' lines (empty and null values left out), e.g. one side of a correlation."""
    if not isinstance(record, dict):
        return cell(record)
    return "\n".join(f"{key}: {cell(value)}" for key, value in record.items() if value not in (None, ""))


def oneline(value: Any) -> str:
    """Text folded onto one line (newlines and tabs become spaces)."""
    return re.sub(r"[\t\r\n]+", " ", cell(value))


def markdown_cell(value: Any) -> str:
    """Text safe inside a GitHub Markdown table cell: no raw HTML, no markup, no broken rows."""
    text = cell(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    # A leading "- ", "+ ", "1. " would start a list when the cell text begins a list item or line.
    text = _MD_LEADING.sub(_escape_list_marker, text)
    # Our own <br>, after escaping, so log text cannot smuggle HTML in.
    return re.sub(r"\r\n|\r|\n", "<br>", text).replace("\t", " ")


def _escape_list_marker(match: re.Match[str]) -> str:
    digits, marker = match.groups()
    if (digits and marker in "-+") or (not digits and marker in ".)"):
        return match.group(0)
    return f"{digits}\\{marker}"


def csv_row(values: Iterable[Any]) -> str:
    """One CSV line (RFC 4180 quoting) with formula-like cells neutralised by a leading quote."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([_csv_cell(value) for value in values])
    return buffer.getvalue()


def _csv_cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)  # full precision: CSV is for further processing
    text = cell(value)
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        # OWASP CSV injection advice: a leading apostrophe makes spreadsheets read the cell as text.
        return "'" + text
    return text


def sarif_level(severity: str) -> str:
    """SARIF level for a rule severity: critical/high error, medium warning, low/info note."""
    return _SARIF_LEVEL[Severity(severity)]


def uri(path: str) -> str:
    """A relative file path as a URI reference (forward slashes, percent-encoded)."""
    return urllib.parse.quote(path.replace("\\", "/"), safe="/-._~")
