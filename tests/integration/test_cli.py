"""The CLI through click's CliRunner and as a subprocess: exit codes, stdout/stderr, selection, reports, colour."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from auditor.cli import app
from auditor.core import resources
from tests.helpers import SAMPLE_COVERS, access, scim, write, write_ndjson

REPO = Path(__file__).resolve().parents[2]
AT = "2026-11-15T12:00:00Z"
COVERS = "2026-11-14T00:00:00Z/2026-11-16T00:00:00Z"  # the test data holds every record of the rules' windows
ANSI = re.compile(r"\x1b\[[0-9;]*m")

RULES = {
    "rules/access.yaml": yaml.safe_dump({"rules": [
        {"id": "denied-burst", "title": "No user denied more than twice in an hour", "severity": "high",
         "tags": ["soc2:CC6.1"], "source": "access_requests", "window": "1h", "filter": {"allowed": False},
         "group_by": "user_email", "expect": {"count": {"max": "${var.max_denied}"}}},
        {"id": "foreign-login", "title": "Sign-ins only from expected countries", "severity": "medium",
         "tags": ["iso27001:A.8.5"], "source": "access_requests", "window": "1h",
         "filter": {"allowed": True, "country": {"not_in": "${var.countries}"}}},
    ]}, sort_keys=False),
    "rules/scim.yaml": yaml.safe_dump({"rules": [
        {"id": "scim-heartbeat", "title": "SCIM ran at least once a day", "severity": "low",
         "tags": ["soc2:CC6.2"], "source": "scim_updates", "window": "1d", "expect": {"count": {"min": 1}}},
    ]}, sort_keys=False),
}
CONFIG = ("scim_idp_ids: [idp-1]\nvariables:\n  max_denied: {default: 2}\n  countries: {default: [US, GB]}\n")
DENIED = [access(allowed=False, user_email="eve@x.com", created_at=f"2026-11-15T11:1{i}:00Z", country="US")
          for i in range(3)]


@pytest.fixture
def policy(tmp_path, monkeypatch) -> Path:
    """A policy repo in tmp_path (the current directory) with sample data that passes every rule."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID", raising=False)
    for key in [k for k in os.environ if k.startswith("AUDITOR_VAR_")]:
        monkeypatch.delenv(key)
    for name, text in RULES.items():
        write(tmp_path / name, text)
    write(tmp_path / "auditor.yaml", CONFIG)
    data(tmp_path, [access(country="US")], [scim()])
    return tmp_path


def data(root: Path, access_records, scim_records) -> None:
    write_ndjson(root / "data" / "access_requests.ndjson", access_records)
    if scim_records is None:
        (root / "data" / "scim_updates.ndjson").unlink(missing_ok=True)
    else:
        write_ndjson(root / "data" / "scim_updates.ndjson", scim_records)


def cli(*args: str, env: dict | None = None):
    return CliRunner(env=env).invoke(app.cli, list(args), catch_exceptions=False)


def run(*args: str, env: dict | None = None):
    return cli("run", "--data", "data", "--data-covers", COVERS, "--at", AT, *args, env=env)


# --- validate ---------------------------------------------------------------------------------------------------


def test_validate_ok(policy):
    result = cli("validate")
    assert result.exit_code == 0
    assert result.stdout == "ok: 3 rules in 2 files\n"
    assert result.stderr == ""


def test_validate_reports_every_problem_on_stderr_exit_2(policy):
    write(policy / "rules" / "bad.yaml", "rules:\n  - id: Bad\n    title: t\n    source: access_requests\n"
          "    filtr: {}\n")
    write(policy / "rules" / "worse.yaml", "rules:\n  - id: w\n    title: [\n")
    result = cli("validate")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[:2] == [
        "rules/bad.yaml:2:9: error: rules[0].id: 'Bad' must be lowercase letters, digits, '_', '.', '-' "
        "(starting with a letter or digit)",
        "rules/bad.yaml:5:5: error: unknown key 'filtr' in rule file rules[0]; did you mean 'filter'?",
    ]
    assert lines[2].startswith("rules/worse.yaml:4:1: error: invalid YAML:")
    assert lines[3] == "3 problems found"


def test_validate_explicit_paths_and_missing_path(policy):
    assert cli("validate", "rules/scim.yaml").stdout == "ok: 1 rule in 1 file\n"
    result = cli("validate", "nope")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: rules path not found: nope")


def test_validate_var_sources(policy):
    write(policy / "vars.yaml", "max_denied: many\n")
    result = cli("validate", "--var-file", "vars.yaml")
    assert result.exit_code == 2
    assert "rules/access.yaml:" in result.stderr and "expected an integer, got a string" in result.stderr
    assert cli("validate", "--var-file", "vars.yaml", "--var", "max_denied=4").exit_code == 0
    assert cli("validate", "--var-file", "vars.yaml", env={"AUDITOR_VAR_max_denied": "4"}).exit_code == 0
    bad = cli("validate", "--var", "oops")
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: --var 'oops' is not NAME=VALUE")


# --- plan -------------------------------------------------------------------------------------------------------


def test_plan_text_and_json(policy, tmp_path):
    text = cli("plan", "--at", AT)
    assert text.exit_code == 0, text.stderr
    assert "denied-burst" in text.stdout and "scim-heartbeat" in text.stdout
    assert "access_requests" in text.stdout
    as_json = cli("plan", "--at", AT, "--json", "--account-id", "0000000000000000000000000000acc1")
    assert as_json.exit_code == 0
    doc = json.loads(as_json.stdout)
    assert doc["version"] == 1 and doc["format"] == 2 and doc["reference_time"] == AT
    assert {f["source"] for f in doc["fetches"]} == {"access_requests", "scim_updates"}
    assert all(f["path"].startswith("/client/v4/accounts/0000000000000000000000000000acc1/") for f in doc["fetches"])
    assert sorted(r["id"] for r in doc["rules"]) == ["denied-burst", "foreign-login", "scim-heartbeat"]
    shared = [f for f in doc["fetches"] if f["source"] == "access_requests"]
    assert sum(len(f["rules"]) for f in shared) == 2
    out = cli("plan", "--at", AT, "-o", "plan.json")
    assert out.exit_code == 0
    assert json.loads((tmp_path / "plan.json").read_text())["fetches"] == json.loads(
        cli("plan", "--at", AT, "--json").stdout)["fetches"]


def test_plan_selection(policy):
    doc = json.loads(cli("plan", "--at", AT, "--json", "--tag", "soc2:CC6.2").stdout)
    assert [r["id"] for r in doc["rules"]] == ["scim-heartbeat"]
    doc = json.loads(cli("plan", "--at", AT, "--json", "--rule", "denied-burst", "--rule", "foreign-login").stdout)
    assert [r["id"] for r in doc["rules"]] == ["denied-burst", "foreign-login"]
    one = cli("plan", "--at", AT, "--rule", "scim-heartbeat").stdout.splitlines()[0]
    assert one.startswith(f"Plan at {AT}: 1 rule, 1 fetch (pushdown: "), one  # not "1 rules"


# --- run --------------------------------------------------------------------------------------------------------


def test_run_pass_exit_0(policy):
    result = run()
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert "3 rules" in result.stdout and "3 pass" in result.stdout
    assert not ANSI.search(result.stdout)


def test_run_fail_exit_1_and_fail_on(policy):
    data(policy, DENIED, [scim()])
    result = run()
    assert result.exit_code == 1
    assert re.search(r"FAIL\s+high\s+denied-burst", result.stdout)
    assert run("--fail-on", "high").exit_code == 1
    assert run("--fail-on", "critical").exit_code == 0
    data(policy, [access(country="FR")], [scim()])  # only the medium rule fails
    assert run("--fail-on", "medium").exit_code == 1
    assert run("--fail-on", "high").exit_code == 0


def test_run_error_exit_2_outranks_fail(policy):
    data(policy, DENIED, None)
    result = run()
    assert result.exit_code == 2
    assert re.search(r"ERROR\s+low\s+scim-heartbeat", result.stdout)
    (policy / "data" / "access_requests.ndjson").write_text('{"created_at": "2026-11-15T11:00:00Z"}\n{oops\n')
    write_ndjson(policy / "data" / "scim_updates.ndjson", [scim()])
    result = run("--results", "out.json")
    assert result.exit_code == 2
    doc = json.loads((policy / "out.json").read_text())
    assert {r["id"]: r["status"] for r in doc["results"]} == {
        "denied-burst": "error", "foreign-login": "error", "scim-heartbeat": "pass"}
    assert "access_requests.ndjson:2" in doc["results"][0]["message"]


def test_run_selection_by_rule_and_tag(policy):
    data(policy, DENIED, [scim()])
    assert run("--rule", "scim-heartbeat").exit_code == 0
    assert run("--tag", "iso27001:A.8.5").exit_code == 0
    assert run("--tag", "soc2:CC6.1").exit_code == 1
    result = run("--rule", "scim-heartbeat", "--results", "r.json")
    assert [r["id"] for r in json.loads((policy / "r.json").read_text())["results"]] == ["scim-heartbeat"]
    unknown = run("--rule", "denied-brust")
    assert unknown.exit_code == 2
    assert unknown.stderr == "error: --rule 'denied-brust': no such rule; did you mean 'denied-burst'?\n"
    nothing = run("--tag", "nope")
    assert nothing.exit_code == 2
    assert nothing.stderr.startswith("error: --tag selected no rules")
    assert result.exit_code == 0


def test_run_reports(policy):
    data(policy, DENIED, [scim()])
    result = run("--report", "json=out/results.json", "--report", "markdown=out/summary.md")
    assert result.exit_code == 1
    assert "denied-burst" in result.stdout  # text on stdout by default
    doc = json.loads((policy / "out" / "results.json").read_text())
    schema = json.loads(resources.schema_path("results").read_text())
    assert list(Draft202012Validator(schema).iter_errors(doc)) == []
    assert doc["summary"]["exit_code"] == 1
    assert doc["source"] == "files"
    assert (policy / "out" / "summary.md").read_text().strip()
    to_stdout = run("--report", "json")
    assert json.loads(to_stdout.stdout)["summary"]["fail"] == 1
    quiet = run("--quiet")
    assert quiet.stdout == "" and quiet.exit_code == 1


def test_run_variables_from_cli_env_and_file(policy):
    data(policy, DENIED, [scim()])
    assert run().exit_code == 1
    assert run("--var", "max_denied=3").exit_code == 0
    assert run(env={"AUDITOR_VAR_max_denied": "3"}).exit_code == 0
    write(policy / "v.yaml", "max_denied: 3\n")
    assert run("--var-file", "v.yaml").exit_code == 0
    assert run("--var-file", "v.yaml", env={"AUDITOR_VAR_max_denied": "1"}).exit_code == 1
    assert run("--var-file", "v.yaml", "--var", "max_denied=1", env={"AUDITOR_VAR_max_denied": "3"}).exit_code == 1


def test_run_usage_errors(policy):
    cases = [
        (["--at", "yesterday"], "error: --at 'yesterday' is not an RFC 3339 timestamp"),
        (["--report", "pdf"], "error: --report 'pdf': unknown format 'pdf'"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.exit_code == 2
        assert result.stderr.startswith(message), result.stderr
        assert result.stdout == ""
    no_data = cli("run", "--source", "access_requests", "--at", AT)
    assert no_data.exit_code == 2
    assert no_data.stderr.startswith("error: --source only applies with --data")
    bad_option = cli("run", "--fail-on", "sometimes")
    assert bad_option.exit_code == 2
    assert "Invalid value for '--fail-on'" in bad_option.stderr


def test_invalid_rules_stop_run_and_plan(policy):
    write(policy / "rules" / "bad.yaml", "rules:\n  - {id: x, title: t, source: access_requests, filter: {nope: 1}}\n")
    for result in (run(), cli("plan", "--at", AT)):
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr.startswith("rules/bad.yaml:2:57: error: unknown field 'nope'")


def test_empty_window_is_reported_not_crashed(policy):
    write(policy / "rules" / "future.yaml",
          "rules:\n  - {id: f, title: t, source: access_requests, since: '2027-01-01T00:00:00Z'}\n")
    result = run()
    assert result.exit_code == 2
    assert "rules/future.yaml:2:5: error: rule 'f': its window is empty" in result.stderr


HOSTILE = [
    ("rules/a.yaml", "rules: [[[[\n"),
    ("rules/a.yaml", "\x00\x01binary"),
    ("rules/a.yaml", "rules:\n  - id: a\n    title: t\n    source: access_requests\n    filter: {allowed: ${var.x}}\n"),
    ("rules/a.yaml", "rules:\n  - {id: a, title: t, source: access_requests, expect: {ratio: {where: 5}}}\n"),
    ("rules/a.yaml", "rules:\n  - {id: a, title: t, source: access_requests, group_by: [[x]]}\n"),
    ("auditor.yaml", "variables: [1, 2]\n"),
    ("auditor.yaml", "- not a mapping\n"),
    ("auditor.yaml", "variables:\n  x: 5\n"),
]


@pytest.mark.parametrize(("name", "text"), HOSTILE)
def test_bad_input_never_gives_a_traceback(policy, name, text):
    (policy / name).write_bytes(text.encode())
    for args in (["validate"], ["plan", "--at", AT], ["run", "--data", "data", "--at", AT]):
        result = CliRunner().invoke(app.cli, args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
        assert "internal error" not in result.stderr
        assert all(": error: " in line or line.startswith("error: ") or re.fullmatch(r"\d+ problems? found", line)
                   for line in result.stderr.splitlines()), result.stderr


def test_bad_data_never_gives_a_traceback(policy):
    for content in [b"\x1f\x8bnot really gzip", b"[1, 2, 3]", b'{"result": 5}', b"\xff\xfe", b"null\n",
                    b'{"created_at": 5e400}\n', b'{"created_at": [1]}\n', b'{"created_at": "2026-13-45T00:00:00Z"}\n']:
        (policy / "data" / "access_requests.ndjson").write_bytes(content)
        result = CliRunner().invoke(app.cli, ["run", "--data", "data", "--at", AT, "--results", "r.json"])
        assert result.exit_code == 2, (content, result.stdout, result.stderr)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.stdout + result.stderr
        doc = json.loads((policy / "r.json").read_text())
        assert doc["summary"]["error"] == 2 and doc["summary"]["pass"] == 1


# --- as a subprocess ----------------------------------------------------------------------------------------------


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUDITOR_VAR_", "CLOUDFLARE_", "GITHUB_STEP_SUMMARY", "NO_COLOR"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def test_python_m_auditor_subprocess(policy):
    data(policy, DENIED, [scim()])
    done = subprocess.run([sys.executable, "-m", "auditor", "run", "--data", "data", "--data-covers", COVERS,
                           "--at", AT], capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert done.returncode == 1
    assert "denied-burst" in done.stdout
    assert done.stderr == ""
    bad = subprocess.run([sys.executable, "-m", "auditor", "validate", "rules", "missing"],
                         capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.splitlines()[0] == ("error: rules path not found: missing; pass rule files or directories, "
                                          "or set rules: in auditor.yaml")
    version = subprocess.run([sys.executable, "-m", "auditor", "--version"], capture_output=True, text=True,
                             env=subprocess_env(), timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("auditor, version ")


def test_main_returns_the_exit_code_instead_of_exiting(policy, capsys):
    from auditor.cli import main

    data(policy, DENIED, [scim()])
    assert main(["run", "--data", "data", "--data-covers", COVERS, "--at", AT, "--quiet"]) == 1
    assert main(["validate"]) == 0
    assert main(["validate", "rules", "missing"]) == 2
    assert main(["run", "--no-such-option"]) == 2  # a usage error: click's message, no SystemExit
    assert main(["--version"]) == 0
    err = capsys.readouterr().err
    assert "error: rules path not found: missing" in err and "No such option '--no-such-option'" in err


def _run_on_a_terminal(args: list[str], env: dict[str, str], cwd: Path, stream: str = "stdout") -> tuple[int, str]:
    """Run with stdout (or stderr) on a pseudo-terminal (so the program believes it is interactive)."""
    leader, follower = pty.openpty()
    on_stderr = stream == "stderr"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL if on_stderr else follower,
                            stderr=follower if on_stderr else subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                            cwd=cwd)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    proc.wait(timeout=30)
    if proc.stderr is not None:
        proc.stderr.close()
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


def test_colour_only_on_a_terminal_and_never_with_no_color(policy):
    data(policy, DENIED, [scim()])
    args = [sys.executable, "-m", "auditor", "run", "--data", "data", "--data-covers", COVERS, "--at", AT]
    code, coloured = _run_on_a_terminal(args, subprocess_env(), policy)
    assert code == 1
    assert ANSI.search(coloured), coloured
    code, plain = _run_on_a_terminal(args, subprocess_env(NO_COLOR="1"), policy)
    assert code == 1
    assert "denied-burst" in plain
    assert not ANSI.search(plain)
    piped = subprocess.run(args, capture_output=True, text=True, env=subprocess_env(), cwd=policy, timeout=60)
    assert not ANSI.search(piped.stdout)


def test_bundled_sample_and_starter_rules(monkeypatch):
    """The README's main command: the starter pack over the bundled sample data decides (exit 0 or 1)."""
    if not (REPO / "examples" / "data").is_dir() or not (REPO / "auditor.yaml").is_file():
        pytest.skip("sample data or auditor.yaml not in this checkout")
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert cli("validate").exit_code == 0
    result = CliRunner().invoke(app.cli, ["run", "--data", "examples/data", "--data-covers", SAMPLE_COVERS,
                                       "--at", "2026-11-15T00:00:00Z", "--quiet"])
    assert result.exit_code in (0, 1), result.stderr
