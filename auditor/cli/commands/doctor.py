"""`auditor doctor`: prove on the account what the API schema leaves open; write the API profile."""

from __future__ import annotations

import json
from pathlib import Path

import click

from auditor.cli.common import api_settings, emit, fail, fail_with, guard
from auditor.cli.options import debug_option
from auditor.core.exitcodes import ExitCode


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="auditor.yaml to use (default: ./auditor.yaml if present).")
@click.option("--account-id", envvar="CLOUDFLARE_ACCOUNT_ID", help="Cloudflare account id.")
@click.option("--api-base", envvar="CLOUDFLARE_BASE_URL",
              help="API base URL (default https://api.cloudflare.com/client/v4; http:// only for loopback).")
@click.option("--profile", "profile_path", type=click.Path(path_type=Path),
              help="Write the API profile here (default: api_profile in auditor.yaml, else "
                   ".auditor/api-profile.json).")
@click.option("--json", "as_json", is_flag=True, help="Print the checklist and profile as JSON.")
@debug_option
@guard
def doctor(config_path: Path | None, account_id: str | None, api_base: str | None, profile_path: Path | None,
           as_json: bool, debug: bool) -> int:
    """Check the credential, retention, paging and undeclared pushdowns on the account (at most 13 requests).

    Prints a checklist (each ✗ with its fix) and writes the API profile that plan and run use for 30 days.
    Exit 0 when every probed endpoint could be read, 2 otherwise.
    """
    from auditor.core.timeutil import now_us
    from auditor.load.config import find_config, load_config
    from auditor.load.profile import ProfileError, write_profile
    from auditor.load.profile import profile_path as configured_path
    from auditor.run.doctor import MAX_REQUESTS, diagnose

    found, problems = find_config(config_path)
    config, more = load_config(found)
    if problems or more:
        fail_with([*problems, *more])
    settings = api_settings(config, api_base, account_id or config.account_id)  # says the scheme, never the secret
    diagnosis = diagnose(settings, config.scim_idp_ids, now_us())
    path = profile_path or configured_path(config.path, config.api_profile)
    try:
        write_profile(diagnosis.profile, path)
    except ProfileError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps({"checks": [c.to_json() for c in diagnosis.checks], "requests": diagnosis.requests,
                               "max_requests": MAX_REQUESTS, "profile_path": str(path),
                               "profile": diagnosis.profile.to_json()}, indent=2))
    else:
        lines = [f"auditor doctor: account {settings.account_id} at {settings.base_url}", "",
                 *(c.line() for c in diagnosis.checks), "",
                 f"{diagnosis.requests} requests (at most {MAX_REQUESTS}); API profile written to {path} "
                 "(plan and run use it for 30 days)"]
        emit("\n".join(lines) + "\n", None)
    return ExitCode.OK if diagnosis.usable else ExitCode.UNDECIDED
