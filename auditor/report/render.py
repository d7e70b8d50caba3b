"""Render a results document (SPEC section 4) into the report formats, through Jinja templates."""

from __future__ import annotations

import csv
import functools
import io
import json
import re
import traceback
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from auditor.core.resources import templates_dir
from auditor.report.redact import redact_results

__all__ = ["FORMATS", "ReportError", "redact_results", "render", "render_template_file"]

FORMATS: tuple[str, ...] = ("text", "markdown", "html", "junit", "sarif", "csv", "json")


@dataclass(frozen=True)
class _Format:
    template: str
    autoescape: bool
    # Human-facing formats get control characters made visible: they would break XML, inject terminal
    # escape sequences, or hide text (bidi overrides). JSON-based formats escape them already.
    visible_controls: bool


_BUILTIN: dict[str, _Format] = {
    "text": _Format("text.j2", autoescape=False, visible_controls=True),
    "markdown": _Format("markdown.j2", autoescape=False, visible_controls=True),
    "html": _Format("html.j2", autoescape=True, visible_controls=True),
    "junit": _Format("junit.xml.j2", autoescape=True, visible_controls=True),
    "sarif": _Format("sarif.json.j2", autoescape=False, visible_controls=False),
    "csv": _Format("csv.j2", autoescape=False, visible_controls=True),
}

STATUSES = ("pass", "fail", "waived", "error")
SEVERITIES = ("critical", "high", "medium", "low", "info")
_STATUS_RANK = {"error": 0, "fail": 1, "waived": 2, "pass": 3}
_SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
_ANSI = {"pass": "32", "fail": "1;31", "error": "1;33", "waived": "36", "dim": "2", "bold": "1"}
_AUTOESCAPE_SUFFIXES = (".html", ".htm", ".xml", ".svg", ".xhtml")

# C0 controls except tab/LF/CR, DEL, C1 controls, surrogates, non-characters, bidi overrides/isolates.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u202a-\u202e\u2066-\u2069]")
_PLAIN_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")
_MD_LEADING = re.compile(r"^(\d*)([-+.)])")


class ReportError(Exception):
    """A report could not be rendered; the message is one line, with the template's line when known."""


def render(results: dict, fmt: str, *, color: bool = False, redact: bool = False) -> str:
    """Render a results document in one of FORMATS."""
    if fmt not in FORMATS:
        raise ReportError(f"error: unknown report format {fmt!r} (choose from {', '.join(FORMATS)})")
    if redact:
        results = redact_results(results)
    if fmt == "json":
        return json.dumps(results, indent=2, ensure_ascii=False) + "\n"
    spec = _BUILTIN[fmt]
    directory = templates_dir()
    env = _builtin_environment(spec.autoescape, color)
    context = _visible(results) if spec.visible_controls else results
    text = _render(env, spec.template, context, directory, label=spec.template)
    if fmt == "sarif":
        text = _reformat_json(text, spec.template)
    return text


def render_template_file(template: Path, results: dict, *, redact: bool = False) -> str:
    """Render a user's template in Jinja's sandbox with the same context and filters as the built-ins."""
    template = Path(template)
    if not template.is_file():
        raise ReportError(f"{template}: error: template not found")
    if redact:
        results = redact_results(results)
    # report.html.j2 escapes like the built-in HTML; report.txt.j2 does not.
    output_name = template.name.lower().removesuffix(".j2").removesuffix(".jinja")
    autoescape = output_name.endswith(_AUTOESCAPE_SUFFIXES)
    env = _environment(SandboxedEnvironment, template.parent, autoescape=autoescape, color=False)
    context = _visible(results) if autoescape else results
    return _render(env, template.name, context, template.parent, label=str(template))


def _environment(
    cls: type[jinja2.Environment], directory: Path, *, autoescape: bool, color: bool
) -> jinja2.Environment:
    env = cls(
        loader=jinja2.FileSystemLoader(str(directory), encoding="utf-8"),
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(_filters(color))
    return env


@functools.cache
def _builtin_environment(autoescape: bool, color: bool) -> jinja2.Environment:
    """The built-in templates' environment, made once per process so compiled templates are reused."""
    return _environment(jinja2.Environment, templates_dir(), autoescape=autoescape, color=color)


def _render(env: jinja2.Environment, name: str, results: dict, directory: Path, *, label: str) -> str:
    try:
        return env.get_template(name).render(results=results)
    except jinja2.TemplateSyntaxError as exc:
        where = label if exc.name in (None, name) else exc.name
        raise ReportError(f"{where}:{exc.lineno}: error: {_one_line(exc.message or str(exc))}") from None
    except jinja2.TemplateNotFound as exc:
        position = _template_frame(exc, directory, name, label)
        raise ReportError(f"{position}: error: template not found: {exc.name}") from None
    except UnicodeDecodeError as exc:
        raise ReportError(f"{label}: error: template is not UTF-8 ({exc.reason})") from None
    except OSError as exc:
        raise ReportError(f"{label}: error: cannot read template: {exc.strerror or exc}") from None
    except Exception as exc:  # any runtime failure of a template becomes one line
        position = _template_frame(exc, directory, name, label)
        raise ReportError(f"{position}: error: {_one_line(str(exc)) or type(exc).__name__}") from None


def _template_frame(exc: BaseException, directory: Path, name: str, label: str) -> str:
    """'TEMPLATE:LINE' of the innermost template frame (Jinja rewrites tracebacks to template lines)."""
    root = directory.resolve()
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename)
        if path.suffix != ".py" and path.parent.resolve() == root and path.is_file():
            return f"{label if path.name == name else path.name}:{frame.lineno}"
    return label


def _reformat_json(text: str, label: str) -> str:
    # Parsing proves the template produced JSON; re-dumping gives one stable layout.
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{label}: error: produced invalid JSON at line {exc.lineno}: {exc.msg}") from None
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _visible(value: Any) -> Any:
    """Copy with control characters replaced by visible escapes such as \\x00, in keys and values."""
    if isinstance(value, dict):
        return {_visible(key): _visible(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_visible(item) for item in value]
    if isinstance(value, str):
        return _CONTROL.sub(_escape_control, value)
    return value


def _escape_control(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


# ---- filters available to every template (built-in and user) ----------------------------------------


def _filters(color: bool) -> dict[str, Callable[..., Any]]:
    def paint(text: Any, style: str) -> str:
        """Wrap text in an ANSI colour for a status (or 'dim'/'bold') when colour is on."""
        code = _ANSI.get(style)
        return f"\x1b[{code}m{text}\x1b[0m" if color and code else str(text)

    return {
        "paint": paint,
        "num": format_number,
        "thousands": thousands,
        "measure": measure,
        "group_label": group_label,
        "headline": headline,
        "worst": worst,
        "failing": failing,
        "ordered": ordered,
        "by_severity": by_severity,
        "columns": columns,
        "cell": cell,
        "md": markdown_cell,
        "csv_row": csv_row,
        "sarif_level": sarif_level,
        "uri": uri,
        "steps": steps,
        "heatmap": heatmap,
        "step_marks": step_marks,
        "step_summary": step_summary,
        "failing_steps": failing_steps,
        "step_list": step_list,
        "oneline": oneline,
        "duration": duration,
        "field_lines": field_lines,
        "waiver_notes": waiver_notes,
    }


def format_number(value: Any) -> str:
    """Number as a short string: integers plainly, fractions with up to 4 significant digits."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}"
    return str(int(value))


def thousands(value: Any) -> str:
    """Integer with thousands separators (45,120)."""
    return f"{int(value):,}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def measure(measurement: dict) -> str:
    """Measured vs threshold: 'count 47 > max 5', 'ratio 0.31 > max 0.2', 'count 3 (min 1, max 5)'."""
    name = measurement["expectation"]
    if measurement.get("field"):
        name = f"{name}({measurement['field']})"
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
    bounds = (("min", low), ("max", high))
    parts = [f"{label} {format_number(bound)}" for label, bound in bounds if bound is not None]
    return f" ({', '.join(parts)})" if parts else ""


def group_label(group: dict | None) -> str:
    """A group as 'field=value, field=value'; empty for the overall measurement."""
    if not group:
        return ""
    return ", ".join(f"{key}={'null' if value is None else value}" for key, value in group.items())


def worst(result: dict) -> dict | None:
    """The measurement to headline: the failing one furthest past its bound, else the first."""
    measurements = result["measurements"]
    failed = [m for m in measurements if not m["ok"]]
    if failed:
        return max(failed, key=_overshoot)
    return measurements[0] if measurements else None


def _overshoot(measurement: dict) -> float:
    value = measurement["value"]
    if value is None:
        return 0.0
    for bound, sign in ((measurement.get("max"), 1), (measurement.get("min"), -1)):
        if bound is not None and sign * (value - bound) > 0:
            return sign * (value - bound) / (abs(bound) or 1)
    return 0.0


def failing(measurements: Iterable[dict]) -> list[dict]:
    """Only the measurements that did not hold."""
    return [m for m in measurements if not m["ok"]]


def headline(result: dict) -> str:
    """One-line outcome of a rule: worst measurement, its group, and how many other groups failed."""
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


def ordered(results: list[dict]) -> list[dict]:
    """Rules for reading: errors, failures, waived, passes; then by severity; then as given."""

    def rank(pair: tuple[int, dict]) -> tuple[int, int, int]:
        index, result = pair
        return _STATUS_RANK[result["status"]], SEVERITIES.index(result["severity"]), index

    return [result for _, result in sorted(enumerate(results), key=rank)]


def by_severity(results: list[dict]) -> list[dict]:
    """Status counts per severity, most severe first: [{'severity', 'total', 'pass', 'fail', ...}]."""
    rows = []
    for severity in SEVERITIES:
        counts = {status: 0 for status in STATUSES}
        for result in results:
            if result["severity"] == severity:
                counts[result["status"]] += 1
        rows.append({"severity": severity, "total": sum(counts.values()), **counts})
    return rows


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
    parts = []
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
    return _SARIF_LEVEL[severity]


def uri(path: str) -> str:
    """A relative file path as a URI reference (forward slashes, percent-encoded)."""
    return urllib.parse.quote(path.replace("\\", "/"), safe="/-._~")


def waiver_notes(results: dict, rule_id: str) -> str:
    """The waivers of one rule on one line: 'expired SEC-140 (expires 2026-11-01, 0 records); ...'."""
    notes = []
    for w in results.get("waivers") or ():
        if w.get("rule") == rule_id:
            label = w.get("ticket") or w.get("owner")
            notes.append(f"{w.get('state')} {label} (expires {w.get('expires')}, {w.get('records')} records)")
    return "; ".join(notes)


def steps(results: list[dict]) -> list[str]:
    """All timeline instants across the results, in time order."""
    instants = {step["at"] for result in results for step in result.get("timeline") or ()}
    return sorted(instants)


def heatmap(results: list[dict], width: float = 1100) -> dict:
    """Timelines aligned on shared instants, laid out for an SVG of about `width` pixels.

    {'steps': [at...], 'rows': [{'id', 'status', 'cells': [step|None], 'bad': N}], 'label': px of the rule id
    column, 'cell': px per step, 'ticks': [{'x', 'text'}] (axis labels that do not overlap), 'width', 'height'}.
    """
    instants = steps(results)
    rows = []
    for result in results:
        if not result.get("timeline"):
            continue
        by_at = {step["at"]: step for step in result["timeline"]}
        cells = [by_at.get(at) for at in instants]
        bad = sum(1 for c in cells if c and c["status"] != "pass")
        rows.append({"id": result["id"], "status": result["status"], "cells": cells, "bad": bad})
    label = max((len(r["id"]) for r in rows), default=4) * 7 + 16
    n = max(len(instants), 1)
    cell = min(max((width - label - 56) / n, 3.0), 24.0)
    # Axis labels: the date (and the time when the steps are not all at the same time of day), as many
    # as fit without overlapping, on the first step and every k-th after it.
    times = {at[11:16] for at in instants}
    text = (lambda at: at[5:10]) if len(times) <= 1 else (lambda at: f"{at[5:10]} {at[11:16]}")
    room = 40 if len(times) <= 1 else 76
    k = max(1, -(-room // int(cell)) if cell >= 1 else room)
    ticks = [{"x": label + i * cell, "text": text(at)} for i, at in enumerate(instants) if i % k == 0]
    return {"steps": instants, "rows": rows, "label": label, "cell": cell, "ticks": ticks,
            "width": label + cell * n + 56, "height": len(rows) * 20 + 24}


_MARKS = {"pass": ".", "fail": "x", "waived": "w", "error": "!"}


def step_marks(result: dict) -> str:
    """A periodic result's timeline, one character per step: `.` pass, `x` fail, `w` waived, `!` error."""
    return "".join(_MARKS.get(step["status"], "?") for step in result.get("timeline") or ())


def step_summary(result: dict) -> str:
    """How a periodic result's steps went: 'failed at 4 of 30 steps', ''; without a timeline."""
    timeline = result.get("timeline") or []
    n = len(timeline)
    if not n:
        return ""
    count = {status: sum(1 for step in timeline if step["status"] == status) for status in STATUSES}
    if count["error"]:
        return f"error at {count['error']} of {n} steps"
    if count["fail"]:
        return f"failed at {count['fail']} of {n} steps" + (f", {count['waived']} waived" if count["waived"] else "")
    if count["waived"]:
        return f"waived at {count['waived']} of {n} steps"
    return f"passed at all {n} steps"


def failing_steps(result: dict) -> list[dict]:
    """The timeline steps that failed or errored."""
    return [step for step in result.get("timeline") or () if step["status"] in ("fail", "error")]


def step_list(timeline: Iterable[dict]) -> str:
    """Steps as text: '2026-11-03T00:00:00Z (2 groups), 2026-11-05T00:00:00Z (error)'."""
    parts = []
    for step in timeline:
        if step["status"] == "error":
            parts.append(f"{step['at']} (error)")
        else:
            v = step["violations"]
            parts.append(f"{step['at']} ({v} group{'' if v == 1 else 's'})")
    return ", ".join(parts)
