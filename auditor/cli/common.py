"""What every command shares: the one exit style (commands return an ExitCode; CommandError is exit 2), loading."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from auditor.core.diagnostics import Diagnostic
from auditor.core.model import Config
from auditor.core.visible import visible
from auditor.decide.gate import decide
from auditor.load.validate import Inputs, Project, load_project

if TYPE_CHECKING:  # the client (httpx) is imported only by the commands that talk to the API
    from auditor.sources.cloudflare.settings import ApiSettings


class CommandError(Exception):
    """Stop the command with exit 2 after printing its lines (`error: ...` or diagnostics) to stderr."""

    def __init__(self, *lines: str) -> None:
        super().__init__(lines[0] if lines else "")
        self.lines = lines


def fail(message: str) -> NoReturn:
    """Stop with a one-line `error: MESSAGE` (exit 2)."""
    raise CommandError(f"error: {message}")


def fail_with(problems: Iterable[Diagnostic]) -> NoReturn:
    """Stop after printing each diagnostic on its own line (exit 2)."""
    raise CommandError(*(d.format() for d in problems))


def guard(func: Callable[..., int]) -> Callable[..., int]:
    """Run a command: one-line errors instead of tracebacks (unless --debug); return its exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            return int(func(*args, **kwargs))
        except CommandError as exc:
            for line in exc.lines:  # they may quote rule keys, names and values: one line each, visible
                click.echo(visible(line, one_line=True), err=True)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {visible(str(exc), one_line=True)}"
            if kwargs.get("debug"):
                # The traceback, and still exit 2: Python's own exit 1 would read as "a rule failed".
                traceback.print_exc(file=sys.stderr)
                click.echo(f"error: internal error ({reason})", err=True)
            else:
                click.echo(f"error: internal error ({reason}); rerun with --debug for details", err=True)
        return int(decide(undecided=True))

    return wrapper


def load(paths: tuple[Path, ...], config_path: Path | None, cli_vars: tuple[str, ...],
         var_files: tuple[Path, ...], waivers_path: Path | None = None) -> Project:
    """The project from the command line's inputs (diagnostics are in the project, not raised)."""
    inputs = Inputs(paths=paths, config_path=config_path, var_files=var_files, cli_vars=cli_vars,
                    env=dict(os.environ), waivers_path=waivers_path)
    project = load_project(inputs)
    report_problems(project.warnings)  # e.g. a regex that may backtrack: said, but not a stop
    return project


def load_valid(paths: tuple[Path, ...], config_path: Path | None, cli_vars: tuple[str, ...],
               var_files: tuple[Path, ...], waivers_path: Path | None = None) -> Project:
    """The project, or stop with its diagnostics (exit 2)."""
    project = load(paths, config_path, cli_vars, var_files, waivers_path)
    if project.diagnostics:
        fail_with(project.diagnostics)
    return project


def report_problems(problems: Iterable[Diagnostic]) -> None:
    """Print each diagnostic on its own line to stderr."""
    for d in problems:
        click.echo(d.format(), err=True)


def use_color(no_color: bool = False) -> bool:
    """Colour on stdout: only a terminal, and never with --no-color or NO_COLOR set."""
    return sys.stdout.isatty() and not no_color and "NO_COLOR" not in os.environ


def warn(message: str) -> None:
    """`warning: MESSAGE` on stderr (also with --quiet: warnings are never silenced)."""
    click.echo(f"warning: {message}", err=True)


def emit(text: str, path: Path | None) -> None:
    """Write text to path (parents created; a temporary file renamed into place) or to stdout."""
    from auditor.report.outputs import encodable, write_atomic

    if path is None:
        click.echo(encodable(text), nl=not text.endswith("\n"))
        return
    try:
        write_atomic(path, text)
    except OSError as exc:
        fail(f"cannot write report {path}: {exc.strerror or exc}")


def api_settings(config: Config, api_base: str | None, account_id: str | None, concurrency: int | None = None,
                 retries: int | None = None) -> ApiSettings:
    """The API client's settings from auditor.yaml and the command line (a one-line error when unusable); says
    on stderr which credential scheme is used, never the secret."""
    from auditor.sources.cloudflare.client import SetupError, settings_from

    try:
        settings = settings_from(api_base or config.api_base, account_id, os.environ,
                                 concurrency or config.concurrency, max_wait_s=config.max_retry_wait,
                                 deadline_s=config.request_deadline, retries=retries, per_page=config.per_page)
    except SetupError as exc:
        fail(str(exc))
    click.echo(settings.credentials.describe(), err=True)
    return settings
