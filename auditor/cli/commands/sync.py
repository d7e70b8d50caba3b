"""`auditor sync --to DIR`: copy both logs from the API into a Parquet log lake (incremental, idempotent)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from auditor.cli import selection
from auditor.cli.common import api_settings, emit, fail, fail_with, guard
from auditor.cli.options import api_options, debug_option
from auditor.core.exitcodes import ExitCode


@click.command()
@click.option("--to", "lake", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="The lake directory (created when missing; `run --data DIR` reads it).")
@click.option("--since", metavar="TIME",
              help="Read from this time (RFC 3339; default: an hour before the end of what the lake holds, else as "
                   "far back as the API keeps).")
@click.option("--until", metavar="TIME", help="Read until this time (RFC 3339; default now).")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="auditor.yaml to use (default: ./auditor.yaml if present).")
@click.option("--account-id", envvar="CLOUDFLARE_ACCOUNT_ID", help="Cloudflare account id.")
@api_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@debug_option
@guard
def sync(lake: Path, since: str | None, until: str | None, config_path: Path | None, account_id: str | None,
         api_base: str | None, concurrency: int | None, per_page: int | None, max_wait: int | None,
         retries: int | None, no_progress: bool, as_json: bool, debug: bool) -> int:
    """Copy the API's logs into a Parquet log lake: only what it lacks, complete or not at all.

    Exit 0 when every log was read completely and written; 2 otherwise, with the lake unchanged.
    """
    import dataclasses

    from auditor.cli.progress import ApiProgress, Display, wanted
    from auditor.core.timeutil import now_us
    from auditor.load.config import find_config, load_config
    from auditor.run.sync import SyncError
    from auditor.run.sync import sync as sync_lake
    from auditor.sources.cloudflare.client import ApiClient
    from auditor.sources.cloudflare.envelope import CredentialsRejected

    since_us = None if since is None else selection.option_time("--since", since)
    until_us = None if until is None else selection.option_time("--until", until)
    if since_us is not None and until_us is not None and since_us >= until_us:
        fail("--since must be before --until")
    found, problems = find_config(config_path)
    config, more = load_config(found)
    if problems or more:
        fail_with([*problems, *more])
    if per_page is not None:
        config = dataclasses.replace(config, per_page=per_page)
    if max_wait is not None:
        config = dataclasses.replace(config, max_retry_wait=max_wait)
    settings = api_settings(config, api_base, selection.account(account_id or config.account_id), concurrency,
                            retries)
    try:  # the progress line is erased (the Display closed) before an error is printed
        with Display(sys.stderr, wanted(sys.stderr, no_progress=no_progress)) as display, \
                ApiClient(settings, progress=ApiProgress(display, 2)) as client:
            result = sync_lake(lake, client, config, now_us(), since_us, until_us)
    except (SyncError, CredentialsRejected) as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        emit("".join(f"{log.line()}\n" for log in result.logs), None)
    return ExitCode.OK
