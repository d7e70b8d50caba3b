"""Where `run` sends its reports: --report FORMAT[=PATH], --results, --template, and the GitHub step summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from auditor.cli.common import emit, fail, warn


def parse_reports(specs: tuple[str, ...], results_path: Path | None) -> list[tuple[str, Path | None]]:
    """(format, path or None for stdout) per --report; a text report on stdout unless one already goes there."""
    from auditor.report.render import FORMATS

    out: list[tuple[str, Path | None]] = []
    for spec in specs:
        fmt, sep, path = spec.partition("=")
        if fmt not in FORMATS:
            fail(f"--report {spec!r}: unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
        out.append((fmt, Path(path) if sep and path else None))
    if results_path is not None:
        out.append(("json", results_path))
    to_stdout = [fmt for fmt, path in out if path is None]
    if len(to_stdout) > 1:
        fail(f"--report {' and '.join(to_stdout)} would both go to stdout; give all but one a path "
             "(--report FORMAT=PATH)")
    if not to_stdout:
        out.insert(0, ("text", None))
    return out


def parse_templates(specs: tuple[str, ...], reports: list[tuple[str, Path | None]],
                    quiet: bool) -> list[tuple[Path, Path | None]]:
    """(template, path or None for stdout) per --template; stdout takes one report or template only."""
    out: list[tuple[Path, Path | None]] = []
    for spec in specs:
        template, sep, path = spec.partition("=")
        if not Path(template).is_file():
            fail(f"--template {spec!r}: template file {template!r} not found")
        out.append((Path(template), Path(path) if sep and path else None))
    explicit = [fmt for fmt, path in reports if path is None and not (fmt == "text" and quiet)]
    to_stdout = [str(t) for t, path in out if path is None]
    if to_stdout and (len(to_stdout) > 1 or explicit):
        fail(f"--template {to_stdout[0]} and {'the ' + explicit[0] + ' report' if explicit else to_stdout[1]} "
             "would both go to stdout; give all but one a path (FILE.j2=PATH)")
    return out


def write_reports(document: dict[str, Any], reports: list[tuple[str, Path | None]],
                  templates: list[tuple[Path, Path | None]], *, quiet: bool, redact: bool, color: bool) -> None:
    """Render every report and template; append Markdown to $GITHUB_STEP_SUMMARY when it is set."""
    from auditor.report.render import ReportError, render, render_template_file

    try:
        for fmt, path in reports:
            if fmt == "text" and path is None:
                if quiet:
                    continue
                # The warnings went to stderr already (they survive --quiet); the terminal shows them once.
                emit(render({**document, "warnings": []}, fmt, color=color, redact=redact), path)
                continue
            emit(render(document, fmt, color=path is None and color, redact=redact), path)
        for template, path in templates:
            emit(render_template_file(template, document, redact=redact), path)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            _append_summary(Path(summary), render(document, "markdown", redact=redact))
    except ReportError as exc:
        fail(str(exc).removeprefix("error: "))


def _append_summary(path: Path, markdown: str) -> None:
    """GitHub Actions shows this file on the job page; other steps append too, so the run's block is appended
    whole, in one write (a crash or a full disk leaves it out, never half of it)."""
    from auditor.report.outputs import append_whole

    try:
        append_whole(path, markdown)
    except OSError as exc:
        warn(f"cannot append to the GitHub step summary {path}: {exc.strerror or exc}")
