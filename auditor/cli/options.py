"""Option groups shared by several commands, as decorators."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from auditor.core.model import Config
from auditor.core.selection import Selection

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _apply(func: Callable[..., Any], decorators: list[Decorator]) -> Callable[..., Any]:
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def debug_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--debug: tracebacks for internal errors."""
    return click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")(func)


def project_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every command that reads rules."""
    return _apply(func, [
        click.argument("paths", nargs=-1, type=click.Path(path_type=Path)),
        click.option("--config", "config_path", type=click.Path(path_type=Path),
                     help="auditor.yaml to use (default: ./auditor.yaml if present)."),
        click.option("--var", "cli_vars", multiple=True, metavar="NAME=VALUE",
                     help="Set a variable (VALUE parsed as YAML); repeatable; wins over every other source."),
        click.option("--var-file", "var_files", multiple=True, type=click.Path(path_type=Path),
                     help="YAML mapping of variables; repeatable."),
        click.option("--waivers", "waivers_path", type=click.Path(path_type=Path),
                     help="Waivers file (default: waivers: in auditor.yaml)."),
        debug_option,
    ])


_PERIOD_HELP = ("Evaluate every rule at each step of a period: 2026-11, 2026-Q4, 2026-W47, 2026 or START/END "
                "(RFC 3339); the data is fetched once.")


def period_options(func: Callable[..., Any], period_help: str = _PERIOD_HELP) -> Callable[..., Any]:
    """--period, --tz and --step (periodic audits)."""
    return _apply(func, [
        click.option("--period", "period_text", metavar="PERIOD", help=period_help),
        click.option("--tz", help="IANA time zone of a calendar --period and of day steps (default UTC)."),
        click.option("--step", help="Time between the period's reference times (default 1d)."),
    ])


def rule_choice_options(func: Callable[..., Any], *, tags: bool = True) -> Callable[..., Any]:
    """--rule, --tag, --skip-rule, --skip-tag, passed to the command as one `chosen: Selection`."""
    def wrapper(*args: Any, rule_ids: tuple[str, ...] = (), tags: tuple[str, ...] = (),
                skip_rule_ids: tuple[str, ...] = (), skip_tags: tuple[str, ...] = (), **kwargs: Any) -> Any:
        return func(*args, chosen=Selection(rule_ids, tags, skip_rule_ids, skip_tags), **kwargs)

    functools.update_wrapper(wrapper, func)
    decorators: list[Decorator] = [
        click.option("--rule", "rule_ids", multiple=True, metavar="ID",
                     help="Only this rule id (a shell glob like 'scim-*' too); repeatable."),
        click.option("--skip-rule", "skip_rule_ids", multiple=True, metavar="ID",
                     help="Leave out this rule id or glob; repeatable."),
    ]
    if tags:
        decorators += [
            click.option("--tag", "tags", multiple=True, metavar="TAG",
                         help="Only rules with this tag; 'soc2' selects every 'soc2:...' tag, globs like "
                              "'soc2:CC6.*' work; repeatable."),
            click.option("--skip-tag", "skip_tags", multiple=True, metavar="TAG",
                         help="Leave out rules with this tag (prefix or glob as --tag); repeatable."),
        ]
    return _apply(wrapper, decorators)


def selection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """What plan and run both select: reference time or period, account, rules by id or tag."""
    func = rule_choice_options(func)
    func = click.option("--account-id", envvar="CLOUDFLARE_ACCOUNT_ID",
                        help="Cloudflare account id (also shown in planned paths).")(func)
    func = period_options(func)
    return click.option("--at", help="Reference time T (RFC 3339; default now).")(func)


def no_color_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--no-color: the same as setting NO_COLOR."""
    return click.option("--no-color", is_flag=True, help="No colour, as with NO_COLOR set.")(func)


def report_period_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """`report --period`: a check of the saved results, not an evaluation."""
    return period_options(func, "Refuse (exit 2) unless the results are of this period (with --tz, --step); "
                                "the timeline is never recomputed.")


def api_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """How the API is read (run, sync): --api-base, --concurrency, --per-page, --no-progress, --max-wait, --retries."""
    return _apply(func, [
        click.option("--api-base", envvar="CLOUDFLARE_BASE_URL",
                     help="API base URL (default https://api.cloudflare.com/client/v4; http:// only for loopback)."),
        click.option("--concurrency", type=click.IntRange(1, 32),
                     help=f"Requests in flight at once (default {Config.concurrency})."),
        click.option("--per-page", type=click.IntRange(1, 1000),
                     help=f"Records per page asked of the API (default {Config.per_page})."),
        click.option("--no-progress", is_flag=True,
                     help="No progress line on stderr (it is drawn only on a terminal, never with --quiet or in CI)."),
        click.option("--max-wait", type=click.IntRange(0, 86400), metavar="SECONDS",
                     help=f"Longest Cloudflare rate-limit wait (Retry-After) to honour (default "
                          f"{Config.max_retry_wait}; config max_retry_wait)."),
        click.option("--retries", type=click.IntRange(0, 20),
                     help="Retries of a failed or rate-limited request before what needs it fails (default 4)."),
    ])


def engine_options(help_text: str, *, shown: tuple[str, ...] = (), runs: bool = True) -> Decorator:
    """--engine (default: `engine:` in auditor.yaml); `shown` adds engines whose SQL `plan` shows without running
    it; `runs`: also --spark-master."""
    from auditor.core.model import ENGINES

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        options: list[Decorator] = [click.option("--engine", type=click.Choice([*ENGINES, *shown]),
                                                 help=f"{help_text} Default: engine: in auditor.yaml, else auto.")]
        if runs:
            options.append(click.option("--spark-master", default="local[*]", show_default=True, metavar="URL",
                                        help="With --engine spark: the Spark master to run on."))
        return _apply(func, options)
    return decorate
