"""`auditor run` over the API from the command line: settings, one-line errors before any request,
options, progress, a subprocess run, and the token absent from every output on every error path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from auditor.sources.cloudflare import client as api
from tests.integration.test_api_source import (
    ACCOUNT,
    EMAIL,
    KEY,
    SECRETS,
    TOKEN,
    access_records,
    cli,
    load,
    no_secrets,
    queries,
    rule,
    run_args,
    scim_records,
    statuses,
    token_env,
    write_data,
    write_rules,
)

REPO = Path(__file__).resolve().parents[2]
RULES = [rule("denied", filter={"allowed": False}, expect={"count": {"max": 1000}}),
         rule("scim", "scim_updates", expect={"count": {"min": 1}})]
ALL_REPORTS = ("text", "markdown", "html", "junit", "sarif", "csv", "json")



@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_data(tmp_path / "data", access_records(40), scim_records(20))
    return write_rules(tmp_path, RULES)


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.stderr
    no_secrets(result.stdout, result.stderr)


# --- settings are checked before any request ----------------------------------------------------------


def test_missing_credentials_is_one_line_before_any_request(project, emulator):
    emu = emulator(project / "data", account_id=ACCOUNT, token=TOKEN)
    result = cli(run_args(project, base=emu.base_url))
    _one_line_error(result, "no Cloudflare credentials", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_EMAIL")
    assert emu.requests == []
    assert not (project / "results.json").exists()


@pytest.mark.parametrize(("env", "missing"), [
    ({"CLOUDFLARE_EMAIL": EMAIL}, "CLOUDFLARE_API_KEY is not set"),
    ({"CLOUDFLARE_API_KEY": KEY}, "CLOUDFLARE_EMAIL is not set"),
])
def test_half_a_key_pair_is_an_error(project, emulator, env, missing):
    emu = emulator(project / "data", account_id=ACCOUNT)
    result = cli(run_args(project, base=emu.base_url), env=env)
    _one_line_error(result, missing)
    assert emu.requests == []


def test_missing_account_is_one_line_before_any_request(project, emulator):
    emu = emulator(project / "data", token=TOKEN)
    args = [a for a in run_args(project, base=emu.base_url) if a not in ("--account-id", ACCOUNT)]
    result = cli(args, env=token_env())
    _one_line_error(result, "no Cloudflare account id", "--account-id", "CLOUDFLARE_ACCOUNT_ID", "auditor.yaml")
    assert emu.requests == []


def test_account_from_env_and_from_config(project, emulator, clock):
    emu = emulator(project / "data", account_id=ACCOUNT, token=TOKEN)
    args = [a for a in run_args(project, base=emu.base_url) if a not in ("--account-id", ACCOUNT)]
    assert cli(args, env=token_env(CLOUDFLARE_ACCOUNT_ID=ACCOUNT)).exit_code == 0
    write_rules(project, RULES, config=f"account_id: {ACCOUNT}\nscim_idp_ids: [idp-0, idp-1]\n")
    assert cli(args, env=token_env()).exit_code == 0
    assert {r.path.split("/")[4] for r in emu.requests} == {ACCOUNT}


def test_an_account_id_that_is_not_one_is_refused(project, emulator):
    emu = emulator(project / "data", token=TOKEN)
    args = run_args(project, base=emu.base_url)
    args[args.index(ACCOUNT)] = "../../other?x=1"
    _one_line_error(cli(args, env=token_env()), "is not a Cloudflare account id")
    assert emu.requests == []


@pytest.mark.parametrize("base", ["http://api.example.com/client/v4", "http://10.0.0.8:8787/client/v4"])
def test_plain_http_is_refused_unless_loopback(project, base):
    result = cli(run_args(project, base=base), env=token_env())
    _one_line_error(result, "refusing plain http://", "use https://")


def test_credentials_in_the_base_url_are_refused_and_not_echoed(project):
    result = cli(run_args(project, base=f"https://user:{TOKEN}@api.example.com/client/v4"), env=token_env())
    _one_line_error(result, "must not hold credentials")


def test_base_url_from_env_and_config_and_option_precedence(project, emulator, clock):
    emu = emulator(project / "data", account_id=ACCOUNT, token=TOKEN)
    assert cli(run_args(project), env=token_env(CLOUDFLARE_BASE_URL=emu.base_url)).exit_code == 0
    write_rules(project, RULES, config=f"api_base: {emu.base_url}\nscim_idp_ids: [idp-0, idp-1]\n")
    assert cli(run_args(project), env=token_env()).exit_code == 0
    # --api-base wins over the environment, which wins over the config.
    result = cli(run_args(project, base=emu.base_url), env=token_env(CLOUDFLARE_BASE_URL="http://example.com/x"))
    assert result.exit_code == 0, result.stderr
    refused = cli(run_args(project), env=token_env(CLOUDFLARE_BASE_URL="http://example.com/x"))
    _one_line_error(refused, "refusing plain http:// to example.com")
    assert len({r.query for r in emu.requests}) >= 2


def test_per_page_and_concurrency_options_and_config(project, emulator, clock):
    emu = emulator(project / "data", account_id=ACCOUNT, token=TOKEN)
    assert cli(run_args(project, "--per-page", "7", "--concurrency", "1", base=emu.base_url),
               env=token_env()).exit_code == 0
    assert {q["per_page"][0] for q in queries(emu)} == {"7"}
    write_rules(project, RULES, config="per_page: 9\nconcurrency: 2\nscim_idp_ids: [idp-0, idp-1]\n")
    assert cli(run_args(project, base=emu.base_url), env=token_env()).exit_code == 0
    assert {q["per_page"][0] for q in queries(emu)} == {"7", "9"}
    assert cli(run_args(project, "--per-page", "1001", base=emu.base_url), env=token_env()).exit_code == 2


def test_pushdown_documented_sends_only_documented_parameters(project, emulator, clock):
    write_rules(project, [rule("d", filter={"allowed": False, "user_email": {"contains": "@svc."}},
                               expect={"count": {"max": 99}})],
                config="pushdown: documented\nscim_idp_ids: [idp-0]\n")
    emu = emulator(project / "data", account_id=ACCOUNT, token=TOKEN)
    assert cli(run_args(project, base=emu.base_url), env=token_env()).exit_code == 0
    assert {q["email"][0] for q in queries(emu)} == {"@svc."}
    assert not [q for q in queries(emu) if "allowed" in q or "allowedOp" in q]


# --- progress -----------------------------------------------------------------------------------------


def test_no_progress_bar_when_stderr_is_not_a_terminal(project, emulator, clock):
    emu = emulator(project / "data", account_id=ACCOUNT, token=TOKEN)
    result = cli([a for a in run_args(project, base=emu.base_url) if a != "--no-progress"], env=token_env())
    assert result.exit_code == 0
    assert "\r" not in result.stderr and "\x1b" not in result.stderr and "fetches" not in result.stderr


# --- the token never appears in any output ----------------------------------------------------------

SCENARIOS = {
    "pass": {},
    "wrong-token": {"token": "the-right-token"},
    "wrong-account": {"account_id": "other"},
    "server-errors": {"fail_pages": {1: 99}, "fail_status": 500},
    "edge-errors": {"fail_pages": {1: 99}, "fail_status": 502},
    "malformed": {"malformed_first": 99},
    "rate-limited": {"rate_limit_first": 99, "retry_after": 999},
}


# Rendering every report format costs ~0.4 s a run (template compilation), so all formats are checked
# on the richest error paths, and the text report plus results JSON on every other.
CASES = [(name, False, ("text",)) for name in sorted(SCENARIOS)] + [
    ("wrong-token", True, ALL_REPORTS), ("server-errors", True, ALL_REPORTS), ("pass", True, ALL_REPORTS)]


@pytest.mark.parametrize(("scenario", "debug", "formats"), CASES)
def test_token_absent_from_every_output(project, emulator, clock, scenario, debug, formats):
    faults = {"account_id": ACCOUNT, "token": TOKEN, **SCENARIOS[scenario]}
    emu = emulator(project / "data", **faults)
    reports = [f"--report={fmt}={project / 'out' / fmt}" for fmt in formats]
    args = run_args(project, *reports, "--report", "text", base=emu.base_url) + (["--debug"] if debug else [])
    result = cli(args, env=token_env(CLOUDFLARE_EMAIL=EMAIL, CLOUDFLARE_API_KEY=KEY))
    assert result.exit_code == (0 if scenario == "pass" else 2), result.stderr
    if scenario == "wrong-token":  # the run stops at the first 401 with one error line: no reports
        assert not (project / "out").exists() and result.stderr.count("error:") == 1
        no_secrets(result.stdout, result.stderr)
        return
    files = [p.read_text(encoding="utf-8") for p in (project / "out").iterdir()]
    assert len(files) == len(formats)
    no_secrets(result.stdout, result.stderr, (project / "results.json").read_text(), *files)
    if scenario != "pass":
        assert set(statuses(load(project / "results.json")).values()) == {"error"}
        assert "Traceback" not in result.stderr


def test_plan_never_shows_credentials(project):
    result = cli(["plan", str(project / "rules"), "--config", str(project / "auditor.yaml"), "--json"],
                 env=token_env(CLOUDFLARE_EMAIL=EMAIL, CLOUDFLARE_API_KEY=KEY))
    assert result.exit_code == 0
    no_secrets(result.stdout, result.stderr)


def test_settings_repr_hides_secrets():
    settings = api.settings_from("https://api.example.com/client/v4", ACCOUNT,
                                 {"CLOUDFLARE_API_TOKEN": TOKEN, "CLOUDFLARE_EMAIL": EMAIL, "CLOUDFLARE_API_KEY": KEY})
    no_secrets(repr(settings), str(settings), repr(settings.credentials))
    assert settings.credentials.scheme == "token"


# --- as a user runs it ----------------------------------------------------------------------------------


def test_python_dash_m_auditor_run_over_the_emulator(project, emulator):
    emu = emulator(project / "data", account_id=ACCOUNT, token=TOKEN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    env.update(token_env(CLOUDFLARE_ACCOUNT_ID=ACCOUNT, CLOUDFLARE_BASE_URL=emu.base_url, PYTHONPATH=str(REPO)))
    args = [a for a in run_args(project) if a not in ("--account-id", ACCOUNT)]
    done = subprocess.run([sys.executable, "-m", "auditor", *args, "--report", "markdown"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "authenticating with CLOUDFLARE_API_TOKEN" in done.stderr
    doc = load(project / "results.json")
    assert doc["source"] == "api" and doc["summary"]["api_requests"] == len(emu.requests) >= 2
    assert statuses(doc) == {"denied": "pass", "scim": "pass"}
    for secret in SECRETS:
        assert secret not in done.stdout + done.stderr


def test_an_unparsable_base_url_is_one_line(project):
    _one_line_error(cli(run_args(project, base="https://[::1/client/v4"), env=token_env()), "cannot be parsed")
