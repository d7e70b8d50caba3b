"""Render a results document (SPEC section 4) into the report formats, through Jinja templates."""

from __future__ import annotations

import copy
import functools
import json
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from auditor.core.compliance import rollup
from auditor.core.resources import templates_dir
from auditor.core.status import Status
from auditor.core.visible import visible
from auditor.language.expectations import format_number, group_label
from auditor.report.cells import cell, columns, csv_row, duration, field_lines, markdown_cell, oneline, sarif_level, uri
from auditor.report.filters import (
    by_severity,
    failing,
    headline,
    measure,
    ordered,
    readable_fetch,
    thousands,
    unbroken,
    waiver_notes,
    worst,
)
from auditor.report.redact import redact_results
from auditor.report.sandbox import LimitedSandbox, limited_output
from auditor.report.timeline import failing_steps, heatmap, step_list, step_marks, step_summary, steps

__all__ = ["FORMATS", "ReportError", "redact_results", "render", "render_template_file"]

FORMATS: tuple[str, ...] = ("text", "markdown", "html", "junit", "sarif", "csv", "compliance", "json")


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
    "compliance": _Format("compliance.csv.j2", autoescape=False, visible_controls=True),  # the roll-up as CSV
}

_ANSI = {Status.PASS: "32", Status.FAIL: "1;31", Status.ERROR: "1;33", Status.WAIVED: "36", "dim": "2", "bold": "1"}
_AUTOESCAPE_SUFFIXES = (".html", ".htm", ".xml", ".svg", ".xhtml")
_TEMPLATE_SUFFIXES = (".j2", ".jinja2", ".jinja")


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
    autoescape = escapes(template.name)
    env = _environment(LimitedSandbox, template.parent, autoescape=autoescape, color=False)
    # Each template gets its own copy: one that changes the results cannot change what other outputs show.
    context = _visible(results) if autoescape else copy.deepcopy(results)
    return _render(env, template.name, context, template.parent, label=str(template))


def escapes(name: str) -> bool:
    """Whether a template of this file name is autoescaped: report.html.j2 and x.svg.jinja2 are; report.txt.j2
    is not (the output's own suffix, after any of .j2, .jinja, .jinja2)."""
    output_name = name.lower()
    for suffix in _TEMPLATE_SUFFIXES:
        output_name = output_name.removesuffix(suffix)
    return output_name.endswith(_AUTOESCAPE_SUFFIXES)


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
        template = env.get_template(name)
        if isinstance(env, LimitedSandbox):
            return limited_output(template.generate(results=results), label)
        return template.render(results=results)
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
        return visible(value)
    return value


# ---- filters available to every template (built-in and user) ----------------------------------------


def _filters(color: bool) -> dict[str, Callable[..., Any]]:
    def paint(text: Any, style: str) -> str:
        """Wrap text in an ANSI colour for a status (or 'dim'/'bold') when colour is on."""
        code = _ANSI.get(style)
        return f"\x1b[{code}m{text}\x1b[0m" if color and code else str(text)

    return {
        "paint": paint,
        "compliance": lambda results: results.get("compliance") or rollup(results.get("results") or []),
        "num": format_number,
        "thousands": thousands,
        "measure": measure,
        "group_label": group_label,
        "headline": headline,
        "unbroken": unbroken,
        "readable_fetch": readable_fetch,
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
