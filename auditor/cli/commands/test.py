"""`auditor test`: run the rules' own test cases on their fixture records; no network."""

from __future__ import annotations

from pathlib import Path

import click

from auditor.cli import selection
from auditor.cli.common import emit, fail, guard, load_valid, report_problems
from auditor.cli.options import engine_options, project_options, rule_choice_options
from auditor.core.selection import Selection
from auditor.core.status import Status
from auditor.core.timeutil import now_us
from auditor.core.visible import visible
from auditor.decide import gate


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _junit_path(specs: tuple[str, ...]) -> Path | None:
    """--report junit=PATH (the only report `test` writes)."""
    paths = []
    for spec in specs:
        fmt, sep, path = spec.partition("=")
        if fmt != "junit" or not sep or not path:
            fail(f"--report {spec!r}: auditor test writes junit=PATH only")
        paths.append(Path(path))
    if len(paths) > 1:
        fail("--report junit=PATH: give it once")
    return paths[0] if paths else None


@click.command("test")
@project_options
@rule_choice_options
@click.option("--report", "reports", multiple=True, metavar="junit=PATH",
              help="Also write the cases as JUnit XML to PATH (CI test summaries).")
@engine_options("What evaluates the cases' records (auto: Python); duckdb and spark read them as --data files.")
@guard
def test_rules(paths: tuple[Path, ...], config_path: Path | None, cli_vars: tuple[str, ...],
               var_files: tuple[Path, ...], waivers_path: Path | None, debug: bool, chosen: Selection,
               reports: tuple[str, ...], engine: str | None, spark_master: str) -> int:
    """Run the rules' tests: cases on fixture records; no network. Exit 0 all hold, 1 one does not."""
    from auditor.run.ruletests import run_tests

    junit = _junit_path(reports)
    project = load_valid(paths, config_path, cli_vars, var_files, waivers_path)
    rules = selection.select(project, chosen)
    engine = engine or project.config.engine
    from auditor.run.spark import EngineUnavailable

    try:
        results, problems = run_tests(rules, project.config, now_us(), "python" if engine == "auto" else engine,
                                      spark_master)
    except EngineUnavailable as exc:
        fail(str(exc))
    for case in results:
        click.echo(visible(case.line(), one_line=True))  # test names are the rule author's text
    report_problems(problems)
    held = sum(1 for c in results if c.held)
    errors = sum(1 for c in results if c.status is Status.ERROR) + len(problems)
    untested = [r.id for r in rules if not r.tests]
    tested = len(rules) - len(untested)
    summary = (f"{_plural(len(results), 'case')} in {_plural(tested, 'rule')}: "
               f"{held} held, {len(results) - held} did not")
    if untested:
        summary += f"; {_plural(len(untested), 'rule')} without tests ({', '.join(untested)})"
    click.echo(visible(summary, one_line=True))
    if junit is not None:
        from auditor.report.testjunit import CaseOutcome, render_test_junit

        cases = [CaseOutcome(c.rule.id, c.case.name, "held" if c.held else "error" if c.status == "error" else "failed",
                             c.line(), c.case.location.path) for c in results]
        emit(render_test_junit(cases, [d.format() for d in problems]), junit)
    return gate.for_cases((c.held for c in results), errors)
