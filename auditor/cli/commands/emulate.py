"""`auditor emulate`: serve both Cloudflare log endpoints locally from files, with optional faults."""

from __future__ import annotations

from pathlib import Path

import click

from auditor.cli.common import CommandError, fail, guard
from auditor.core.exitcodes import ExitCode


@click.command()
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="Directory (access_requests.*, scim_updates.*) or file of records to serve.")
@click.option("--source", type=click.Choice(["access_requests", "scim_updates"]),
              help="Which log a single --data file holds (when its name does not say).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback only).")
@click.option("--port", default=8787, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")
@click.option("--allow-remote", is_flag=True, help="Allow a --host that is not a loopback address.")
@click.option("--account", "account_id", help="Only serve this account id (others get 404).")
@click.option("--token", help="Require 'Authorization: Bearer TOKEN' (never printed).")
@click.option("--email", help="Accept X-Auth-Email with --api-key.")
@click.option("--api-key", help="Accept X-Auth-Key with --email (never printed).")
@click.option("--latency", default=0.0, type=click.FloatRange(0), help="Seconds added to every request.")
@click.option("--rate-limit-first", default=0, type=click.IntRange(0), help="The first N requests answer 429.")
@click.option("--retry-after", default=1, type=click.IntRange(0), show_default=True,
              help="Retry-After seconds of those 429s.")
@click.option("--fail-page", "fail_pages", multiple=True, metavar="PAGE[:TIMES]",
              help="Answer 5xx for this page number TIMES times (default 1); repeatable.")
@click.option("--fail-status", default=503, type=click.IntRange(500, 599), show_default=True,
              help="Status of --fail-page answers (502/503/504 send an HTML edge page, 500 the JSON envelope).")
@click.option("--malformed-first", default=0, type=click.IntRange(0),
              help="The first N successful bodies are truncated JSON.")
@click.option("--cap-per-page", type=click.IntRange(1), help="Silently serve at most N records per page.")
@click.option("--cap-limit", type=click.IntRange(1),
              help="Silently return at most N entries per query, whatever limit asks (any N >= 1).")
@click.option("--lie-total-pages", type=click.IntRange(0),
              help="result_info.total_pages always says N, however many pages there are.")
@click.option("--result-info/--no-result-info", default=False, show_default=True,
              help="Add result_info to access_requests answers too.")
@click.option("--forbid", "forbidden", multiple=True, type=click.Choice(["access_requests", "scim_updates"]),
              help="Answer 403 for this log, as to a token without its permission; repeatable.")
@click.option("--strict", is_flag=True,
              help="Answer like the published schema: 400 for undeclared parameters and fields, SCIM limit 20 "
                   "by default, null result on empty pages.")
@click.option("--concurrency", default=64, show_default=True, type=click.IntRange(1, 4096),
              help="Clients expected at once; the listen backlog holds them all.")
@guard
def emulate(data: Path, source: str | None, host: str, port: int, allow_remote: bool, account_id: str | None,
            token: str | None, email: str | None, api_key: str | None, latency: float, rate_limit_first: int,
            retry_after: int, fail_pages: tuple[str, ...], fail_status: int, malformed_first: int,
            cap_per_page: int | None, cap_limit: int | None, lie_total_pages: int | None, result_info: bool,
            forbidden: tuple[str, ...], strict: bool, concurrency: int) -> int:
    """Serve both Cloudflare log endpoints locally from files, until Ctrl-C."""
    from auditor.sources.files import DataError
    from auditor.testing.emulator import EmulatorSettings, Faults, parse_fail_pages, serve

    try:
        faults = Faults(latency=latency, rate_limit_first=rate_limit_first, retry_after=retry_after,
                        fail_pages=parse_fail_pages(fail_pages), fail_status=fail_status,
                        malformed_first=malformed_first, cap_per_page=cap_per_page, cap_limit=cap_limit,
                        lie_total_pages=lie_total_pages, result_info_access=result_info,
                        forbidden=frozenset(forbidden))
        settings = EmulatorSettings(source=source, host=host, port=port, allow_remote=allow_remote,
                                    account_id=account_id, token=token, email=email, api_key=api_key,
                                    strict=strict, concurrency=concurrency, faults=faults)
        serve(data, settings, echo=lambda line: click.echo(line))
    except DataError as exc:
        raise CommandError(str(exc)) from None
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    return ExitCode.OK
