"""`auditor report`: re-render a saved run's results JSON; no network."""

from __future__ import annotations

from pathlib import Path

import click

from auditor.cli import selection
from auditor.cli.common import emit, fail, guard, use_color
from auditor.cli.options import debug_option, no_color_option, report_period_options
from auditor.core.exitcodes import ExitCode


@click.command()
@click.argument("results_file", metavar="RESULTS.json", type=click.Path(path_type=Path))
@click.option("--format", "fmt", default="text", show_default=True,
              help="text, markdown, html, junit, sarif, csv, compliance (CSV per framework and control) or json.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write here instead of stdout.")
@click.option("--template", type=click.Path(path_type=Path), help="Render this Jinja template instead.")
@click.option("--redact", is_flag=True, help="Mask emails and IP addresses.")
@report_period_options
@no_color_option
@debug_option
@guard
def report(results_file: Path, fmt: str, output: Path | None, template: Path | None, redact: bool,
           period_text: str | None, tz: str | None, step: str | None, no_color: bool, debug: bool) -> int:
    """Re-render a saved run's results JSON; no network.

    With --period (and --tz, --step) the results must be of exactly that period, else exit 2: a check that
    the report shows the period you asked for; the timeline is never recomputed.
    """
    from auditor.evaluate.results import ResultsFileError, load_results_file
    from auditor.report.outputs import clear
    from auditor.report.render import FORMATS, ReportError, render, render_template_file

    if fmt not in FORMATS:
        fail(f"--format {fmt!r}: unknown format (formats: {', '.join(FORMATS)})")
    if output is not None and output.resolve() != results_file.resolve():
        clear([output])  # a report that fails to render leaves no earlier one at its path
    try:
        document = load_results_file(results_file, str(results_file))
    except ResultsFileError as exc:
        fail(str(exc).removeprefix("error: "))
    period = selection.period(period_text, tz, step)
    if period is not None:
        from auditor.decide.period import period_mismatch

        mismatch = period_mismatch(document, period)
        if mismatch:
            fail(f"{results_file}: --period {period.label}: {mismatch}")
    try:
        text = (render_template_file(template, document, redact=redact) if template
                else render(document, fmt, color=output is None and use_color(no_color), redact=redact))
    except ReportError as exc:
        fail(str(exc).removeprefix("error: "))
    emit(text, output)
    return ExitCode.OK
