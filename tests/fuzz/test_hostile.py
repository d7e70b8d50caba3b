"""Hostile input never hangs, crashes, corrupts a file or lies: one test per attack, through the real CLI.

Rule files come in through pull requests, log values are typed by whoever signs in, templates are the
user's: each test feeds one crafted input to `auditor` (click's CliRunner, or a subprocess where a process
limit is the attack) and checks the promised behaviour. docs/guarantees.md lists them ("Hostile input").
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from auditor.cli import cli
from auditor.language import conditions
from tests.helpers import access, scim, write, write_ndjson

REPO = Path(__file__).resolve().parents[2]
AT = "2026-11-15T12:00:00Z"
# The test data is all there is over any window these tests use: stated, so rules are decided on it.
COVERS = ("--data-covers", "1970-01-01T00:00:00Z/8999-12-31T23:59:59Z")
LOCATED = re.compile(r"^(?P<path>[^\n:]+):(?P<line>\d+):(?P<col>\d+): error: \S", re.M)
DENIED = """\
rules:
  - id: denied
    title: No denied sign-ins
    source: access_requests
    window: 1h
    filter: {allowed: false}
"""


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    """An empty policy folder as the current directory, with no GitHub or AUDITOR_VAR_ environment."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith(("AUDITOR_VAR_", "GITHUB_"))]:
        monkeypatch.delenv(key)
    return tmp_path


def auditor(*args: str, env: dict[str, str] | None = None) -> Result:
    """The CLI in-process; stderr apart."""
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def no_crash(result: Result) -> Result:
    output = result.output + result.stderr
    assert result.exit_code in (0, 1, 2), output
    assert "internal error" not in output and "Traceback" not in output, output
    return result


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return no_crash(auditor("run", *args, "--at", AT, "--no-progress", *COVERS, env=env))


def data(folder: Path, records: list[dict]) -> Path:
    return write_ndjson(folder / "data" / "access_requests.ndjson", records)


# --- regular expressions ---------------------------------------------------------------------------------


# On DuckDB a pattern RE2 can run is matched there (in linear time); a Python-only one (`(?!`) is matched by
# Python on the rows DuckDB leaves it, under the same time bound.
@pytest.mark.parametrize("engine, slow", [("python", "^(a|a)*$"), ("duckdb", "^(?!x)(a|a)*$")])
def test_a_backtracking_regex_errors_its_rule_naming_rule_and_record_and_the_others_are_decided(here, monkeypatch,
                                                                                                 engine, slow):
    monkeypatch.setattr(conditions, "MATCH_TIMEOUT_S", 0.05)  # the bound itself is what is tested, not its size
    write(here / "rules.yaml", DENIED + f"""\
  - id: slow
    title: t
    source: access_requests
    window: 1h
    filter: {{user_email: {{not_matches: "{slow}"}}}}
  - id: issue-pattern
    title: t
    source: access_requests
    window: 1h
    filter: {{user_email: {{not_matches: "^([a-z0-9]+\\\\.?)+@example\\\\.com$"}}}}
""")
    evil = "a" * 40 + "b"
    data(here, [access(user_email=evil, allowed=False, created_at="2026-11-15T11:30:00Z"),
                access(user_email="a" * 32 + "@example.co", created_at="2026-11-15T11:31:00Z")])
    result = run("rules.yaml", "--data", "data", "--results", "r.json", "--quiet", "--engine", engine)
    assert result.exit_code == 2
    by_id = {r["id"]: r for r in json.loads((here / "r.json").read_text())["results"]}
    assert by_id["slow"]["status"] == "error"
    message = by_id["slow"]["message"]
    assert "rule slow" in message and slow in message and evil in message and "user_email" in message
    assert "2026-11-15T11:30:00Z" in message  # the record
    assert by_id["denied"]["status"] == "fail"  # the same records still decide the other rules
    assert by_id["issue-pattern"]["status"] in ("pass", "fail", "error")  # the pattern: never a hang


def test_validate_warns_about_nested_quantifiers_and_still_accepts_the_rule(here):
    write(here / "rules.yaml", """\
rules:
  - id: nested
    title: t
    source: access_requests
    filter: {user_email: {not_matches: "^([a-z0-9]+\\\\.?)+@example\\\\.com$"}}
  - id: flat
    title: t
    source: access_requests
    filter: {user_email: {matches: "^[a-z0-9.]+@example\\\\.com$"}}
""")
    result = no_crash(auditor("validate", "rules.yaml"))
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if ": warning: " in line]
    assert len(warnings) == 1 and warnings[0].startswith("rules.yaml:5:") and "repeats a group" in warnings[0]


# --- lone surrogates and output files ----------------------------------------------------------------------


def test_a_lone_surrogate_in_a_log_value_gives_valid_json_and_sarif_and_replaces_old_outputs(here):
    write(here / "rules.yaml", DENIED.replace("window: 1h", "window: 1h\n    evidence: 5"))
    folder = here / "data"
    folder.mkdir()
    line = json.dumps(access(allowed=False, created_at="2026-11-15T11:30:00Z", user_email="x"))
    (folder / "access_requests.ndjson").write_text(line.replace('"x"', '"a\\ud800b"') + "\n")
    (here / "r.json").write_text('{"an earlier, complete": "results file"}')
    result = run("rules.yaml", "--data", "data", "--results", "r.json", "--report", "sarif=r.sarif",
                 "--report", "html=r.html")
    assert result.exit_code == 1
    results = json.loads((here / "r.json").read_bytes().decode("utf-8"))  # strict UTF-8, complete JSON
    assert results["results"][0]["evidence"][0]["user_email"] == "a\ud800b"  # escaped, not dropped
    json.loads((here / "r.sarif").read_bytes().decode("utf-8"))
    assert "a\\ud800b" in (here / "r.html").read_text(encoding="utf-8")  # shown as an escape
    assert not list(here.glob(".*.tmp"))


def _fsize_limit(limit: int):
    def limit_file_size() -> None:  # in the child: writes past `limit` fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_file_size


def test_a_report_that_cannot_be_written_leaves_no_partial_file_and_no_stale_one(here):
    write(here / "rules.yaml", DENIED)
    data(here, [access(allowed=False, created_at="2026-11-15T11:30:00Z")])
    stale = {"r.json": "{}", "r.html": "<html>an earlier run's report</html>", "r.csv": "id\n"}
    for name, text in stale.items():
        (here / name).write_text(text)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "auditor", "run", "rules.yaml", "--data", "data", "--at", AT, "--quiet",
         "--report", "csv=r.csv", "--report", "html=r.html", "--results", "r.json"],
        cwd=here, env=env, capture_output=True, text=True, timeout=120, preexec_fn=_fsize_limit(4000))
    assert proc.returncode == 2, proc.stderr
    assert "cannot write report" in proc.stderr and "Traceback" not in proc.stderr
    assert (here / "r.csv").is_file() and (here / "r.csv").read_text() != stale["r.csv"]  # small: written whole
    assert not (here / "r.html").exists()  # too large: neither half of it nor the earlier run's report
    assert not (here / "r.json").exists()
    assert not [p.name for p in here.iterdir() if p.name.endswith(".tmp")]


def test_the_github_step_summary_gets_each_runs_block_whole_or_not_at_all(here):
    write(here / "rules.yaml", DENIED)
    data(here, [access(allowed=False, created_at="2026-11-15T11:30:00Z")])
    summary = here / "summary.md"
    earlier = "## an earlier step's summary\n"
    summary.write_text(earlier)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1", "GITHUB_STEP_SUMMARY": str(summary)}
    args = [sys.executable, "-m", "auditor", "run", "rules.yaml", "--data", "data", "--at", AT, "--quiet", *COVERS]
    # The disk fills up after 200 more bytes: the block is left out whole, the earlier steps' text kept.
    proc = subprocess.run(args, cwd=here, env=env, capture_output=True, text=True, timeout=120,
                          preexec_fn=_fsize_limit(len(earlier) + 200))
    assert proc.returncode == 1, proc.stderr  # the rule's verdict still decides the exit code
    assert "cannot append to the GitHub step summary" in proc.stderr and "Traceback" not in proc.stderr
    assert summary.read_text() == earlier
    # With room, two runs append two whole blocks after the earlier text.
    for _ in range(2):
        assert subprocess.run(args, cwd=here, env=env, capture_output=True, timeout=120).returncode == 1
    text = summary.read_text()
    block = re.sub(r"· \d+\.\d\d s", "· S s", text.removeprefix(earlier))  # each run's own duration
    assert text.startswith(earlier) and block[:len(block) // 2] == block[len(block) // 2:]
    assert "1 failed" in block


def test_an_interrupted_run_leaves_no_earlier_outputs_at_its_paths(here, monkeypatch):
    write(here / "rules.yaml", DENIED)
    data(here, [access(allowed=False, created_at="2026-11-15T11:30:00Z")])
    (here / "r.json").write_text("{}")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("auditor.run.runner.run", interrupted)
    result = auditor("run", "rules.yaml", "--data", "data", "--at", AT, "--results", "r.json")
    assert result.exit_code == 2 and "interrupted" in result.stderr
    assert not (here / "r.json").exists()


# --- templates -----------------------------------------------------------------------------------------------


def test_a_template_cannot_change_what_other_outputs_show(here):
    write(here / "rules.yaml", DENIED)
    data(here, [access(allowed=False, created_at="2026-11-15T11:30:00Z")])
    write(here / "evil.txt.j2", '{% set _ = results.summary.update({"fail": 0}) %}'
                                '{% set _ = results.results[0].update({"status": "pass"}) %}ok\n')
    summary = here / "summary.md"
    result = run("rules.yaml", "--data", "data", "--template", "evil.txt.j2=evil.txt", "--results", "r.json",
                 "--quiet", env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 1
    assert "1 failed" in summary.read_text()
    doc = json.loads((here / "r.json").read_text())
    assert doc["summary"]["fail"] == 1 and doc["results"][0]["status"] == "fail"


@pytest.mark.parametrize("name", ["x.html.jinja2", "x.htm.j2", "x.xml.jinja", "x.svg.j2", "X.HTML", "x.xhtml.jinja2"])
def test_html_like_templates_are_autoescaped_whatever_the_template_suffix(here, name):
    write(here / "rules.yaml", DENIED.replace("id: denied", "id: denied\n    description: <script>x</script>"))
    data(here, [access(allowed=False, created_at="2026-11-15T11:30:00Z")])
    write(here / name, "{{ results.results[0].description }}\n")
    result = run("rules.yaml", "--data", "data", "--template", f"{name}=out", "--quiet")
    assert result.exit_code == 1
    assert (here / "out").read_text() == "&lt;script&gt;x&lt;/script&gt;\n"


@pytest.fixture
def results(here) -> Path:
    """A real results file (the current directory's results.json) for `auditor report`."""
    write(here / "rules.yaml", DENIED)
    data(here, [access()])
    assert run("rules.yaml", "--data", "data", "--results", "results.json", "--quiet").exit_code == 0
    return here / "results.json"


@pytest.mark.parametrize("expression", [
    '{{ "a" * 10**10 }}', '{{ 10**10 * "a" }}', '{{ ["a"] * 10**10 }}', '{{ "%9999999999s" % "a" }}',
    '{{ "%*s" % (10**10, "a") }}', '{{ "a"|center(10**10) }}', '{{ "a"|indent(10**10) }}',
    '{{ "{:>9999999999}".format(1) }}', '{{ "{:>{}}".format(1, 10**10) }}', '{{ "a".ljust(10**10) }}',
    '{{ "a".zfill(10**10) }}', '{{ 7 ** (10**9) }}', '{{ "%s"|format("a") * 10**10 }}',
    '{% for i in range(100000) %}{% for j in range(100) %}{{ "a" * 100 }}{% endfor %}{% endfor %}',
])
def test_the_template_sandbox_limits_string_building_and_output_size(results, expression):
    write(results.parent / "t.txt.j2", expression + "\n")
    result = no_crash(auditor("report", "results.json", "--template", "t.txt.j2"))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: t.txt.j2"), result.stderr
    assert "too large" in result.stderr or "more than" in result.stderr, result.stderr


def test_the_limits_leave_ordinary_templates_alone(results):
    write(results.parent / "t.txt.j2", '{{ "-" * 40 }} {{ "%5s" % "a" }} {{ "{:>6}".format(1) }} {{ 2 ** 64 }} '
                             '{{ "x"|center(9) }}|\n')
    result = no_crash(auditor("report", "results.json", "--template", "t.txt.j2"))
    assert result.exit_code == 0, result.stderr
    assert result.output == f"{'-' * 40}     a      1 {2 ** 64}     x    |\n"


# --- control characters and workflow commands --------------------------------------------------------------

INJECTION = "x\n::error title=PWNED::owned\x1b]0;title\x07\x1b[31m\u202e"


def assert_inert(text: str) -> None:
    """No line starts a GitHub workflow command; no terminal control bytes or bidi overrides."""
    assert not [line for line in text.splitlines() if line.lstrip().startswith("::")], text
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", text), repr(text)


def test_control_characters_in_rule_keys_and_test_names_are_made_visible(here):
    key = json.dumps("fil" + INJECTION)
    name = json.dumps("case " + INJECTION)
    write(here / "bad.yaml", f"rules:\n  - id: a\n    title: t\n    source: access_requests\n    {key}: 1\n")
    result = no_crash(auditor("validate", "bad.yaml"))
    assert result.exit_code == 2 and "bad.yaml:5:5: error: unknown key" in result.stderr
    assert "\\x0a\\x3a:error" in result.stderr or "\\x0a::error" in result.stderr
    assert_inert(result.stderr)
    tests = f"    tests:\n      - name: {name}\n        expect: fail\n        records: []\n"
    write(here / "tests.yaml", DENIED + tests)
    result = no_crash(auditor("test", "tests.yaml"))
    assert result.exit_code == 1 and "FAIL denied: case x\\x0a" in result.output
    assert_inert(result.output + result.stderr)


def test_control_characters_in_log_values_are_made_visible_in_every_human_report(here):
    write(here / "rules.yaml", DENIED.replace("window: 1h", "window: 1h\n    group_by: user_email"))
    data(here, [access(allowed=False, created_at="2026-11-15T11:30:00Z", user_email=INJECTION)])
    result = run("rules.yaml", "--data", "data", "--report", "markdown=r.md", "--report", "csv=r.csv",
                 "--report", "junit=r.xml", "--report", "html=r.html")
    assert result.exit_code == 1
    assert_inert(result.output + result.stderr)
    for name in ("r.md", "r.csv", "r.xml", "r.html"):
        assert_inert((here / name).read_text())


# --- extreme times and durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value"), [
    ("window", "99999999w"), ("window", "36501d"), ("since", "0001-01-01T00:00:00Z"), ("since", "99999999w"),
    ("until", "9999-12-31T23:59:59Z"), ("since", "9000-01-01T00:00:00Z"), ("since", "1969-12-31T23:59:59Z"),
])
def test_extreme_times_in_rules_are_located_errors_from_validate_and_run(here, key, value):
    write(here / "rules.yaml", f"rules:\n  - id: w\n    title: t\n    source: access_requests\n    {key}: {value}\n")
    data(here, [access()])
    for result in (no_crash(auditor("validate", "rules.yaml")), run("rules.yaml", "--data", "data")):
        assert result.exit_code == 2
        assert LOCATED.search(result.stderr) and result.stderr.startswith("rules.yaml:5:"), result.stderr


def test_an_extreme_correlation_within_is_a_located_error(here):
    write(here / "rules.yaml", """\
rules:
  - id: c
    title: t
    source: correlation
    correlate:
      first: {source: scim_updates}
      then: {source: access_requests}
      join: {resource_user_email: user_email}
      within: 99999999w
""")
    result = no_crash(auditor("validate", "rules.yaml"))
    assert result.exit_code == 2 and "rules.yaml:9:15: error: duration 99999999w is too long" in result.stderr


@pytest.mark.parametrize("options", [
    ["--at", "9999-12-31T23:59:59Z"], ["--at", "0001-01-01T00:00:00Z"], ["--period", "9999"],
    ["--period", "2026", "--step", "99999999999999999999d"], ["--period", "0001-01-01T00:00:00Z/2026-01-01T00:00:00Z"],
    ["--period", "9999-W52"], ["--period", "9999-12"],
])
def test_extreme_times_in_options_are_usage_errors(here, options):
    write(here / "rules.yaml", DENIED)
    data(here, [access()])
    for command in ("plan", "run"):
        extra = ["--data", "data", "--no-progress"] if command == "run" else []
        result = no_crash(auditor(command, "rules.yaml", *options, *extra))
        assert result.exit_code == 2 and result.stderr.startswith("error: --"), result.stderr


def test_the_edges_of_the_supported_times_run(here):
    write(here / "rules.yaml", DENIED.replace("window: 1h", "window: 36500d"))
    data(here, [access()])
    for at in ("1970-01-01T00:00:00Z", "8999-12-31T23:59:59Z"):
        result = no_crash(auditor("run", "rules.yaml", "--data", "data", *COVERS, "--at", at, "--report",
                                  "html=r.html"))
        assert result.exit_code == 0, result.stderr


# --- deep nesting, huge integers, alias bombs, merge keys ----------------------------------------------------

DEEP = "[" * 600 + "]" * 600


@pytest.mark.parametrize("where", ["rules", "config", "waivers", "var file", "--var", "AUDITOR_VAR_"])
def test_yaml_nested_600_deep_is_a_located_error_wherever_it_is(here, where):
    write(here / "rules.yaml", DENIED)
    args, env = ["rules.yaml"], {}
    if where == "rules":
        write(here / "rules.yaml", DENIED + f"    tags: {DEEP}\n")
    elif where == "config":
        write(here / "auditor.yaml", f"variables: {DEEP}\n")
    elif where == "waivers":
        write(here / "waivers.yaml", f"waivers: {DEEP}\n")
        args += ["--waivers", "waivers.yaml"]
    elif where == "var file":
        write(here / "vars.yaml", f"x: {DEEP}\n")
        args += ["--var-file", "vars.yaml"]
    elif where == "--var":
        args += ["--var", f"x={DEEP}"]
    else:
        env["AUDITOR_VAR_X"] = DEEP
    result = no_crash(auditor("validate", *args, env=env))
    assert result.exit_code == 2 and "nested more than 200 levels" in result.stderr, result.stderr
    if where in ("--var", "AUDITOR_VAR_"):
        assert result.stderr.startswith(("error: --var x:", "error: environment variable AUDITOR_VAR_X:"))
    else:
        assert LOCATED.search(result.stderr), result.stderr


def test_a_5000_digit_integer_in_a_rule_file_is_reported_at_its_line(here):
    write(here / "rules.yaml", DENIED + "    evidence: " + "9" * 5000 + "\n")
    result = no_crash(auditor("validate", "rules.yaml"))
    assert result.exit_code == 2 and result.stderr.startswith("rules.yaml:7:15: error:"), result.stderr[:300]
    assert "set_int_max_str_digits" not in result.stderr


BOMB = "\n".join([f"a: &a [{', '.join(['x'] * 10)}]"]
                 + [f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]" for a, b in zip("abcdefgh", "bcdefghi", strict=True)])


@pytest.mark.parametrize("how", ["--var", "AUDITOR_VAR_", "var file"])
def test_an_alias_bomb_in_a_variable_value_is_rejected(here, how):
    write(here / "rules.yaml", DENIED)
    args, env = ["rules.yaml"], {}
    if how == "--var":
        args += ["--var", f"x={BOMB}"]
    elif how == "var file":
        write(here / "vars.yaml", "x:\n" + "\n".join("  " + line for line in BOMB.splitlines()) + "\n")
        args += ["--var-file", "vars.yaml"]
    else:
        env["AUDITOR_VAR_X"] = BOMB
    result = no_crash(auditor("validate", *args, env=env))
    assert result.exit_code == 2 and "too large or too deeply nested" in result.stderr, result.stderr


def test_yaml_merge_keys_are_overridden_by_the_mappings_own_keys(here):
    write(here / "rules.yaml", """\
rules:
  - &base
    id: base
    title: t
    source: access_requests
    window: 1h
    filter: {allowed: false}
  - <<: *base
    id: longer
    window: 2h
""")
    data(here, [access(allowed=False, created_at="2026-11-15T10:30:00Z")])
    result = run("rules.yaml", "--data", "data", "--results", "r.json", "--quiet")
    results = json.loads((here / "r.json").read_text())["results"]
    statuses = {r["id"]: (r["status"], r["window"]["since"]) for r in results}
    assert statuses == {"base": ("pass", "2026-11-15T11:00:00Z"), "longer": ("fail", "2026-11-15T10:00:00Z")}
    write(here / "dup.yaml", "rules:\n  - id: a\n    title: t\n    title: u\n    source: access_requests\n")
    result = no_crash(auditor("validate", "dup.yaml"))
    assert result.exit_code == 2 and "dup.yaml:4:5: error: duplicate key 'title'" in result.stderr


# --- hostile data lines --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "why"), [("9" * 5000, "more than 4300 digits"),
                                            ("[" * 100_000 + "]" * 100_000, "nested"),
                                            ("[" * 300 + "]" * 300, "nested"),
                                            ('{"a": ' * 80 + "1" + "}" * 80, "nested")],
                         ids=["int-5000-digits", "lists-100000-deep", "lists-300-deep", "objects-80-deep"])
@pytest.mark.parametrize("layout", ["ndjson", "json document"])
@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_huge_integer_or_deep_nesting_in_a_log_line_errors_the_rules_of_that_source(here, value, why, layout, engine):
    scim_rule = "  - id: scim\n    title: t\n    source: scim_updates\n    filter: {idp_id: i}\n"
    write(here / "rules.yaml", DENIED + scim_rule)
    good = json.dumps(access(allowed=False, created_at="2026-11-15T11:30:00Z"))
    bad = good[:-1] + f', "extra": {value}}}'
    if layout == "ndjson":
        write(here / "data" / "access_requests.ndjson", f"{good}\n{bad}\n")
        expected_at = "access_requests.ndjson:2"
    else:
        write(here / "data" / "access_requests.json", f'{{"result": [\n{good},\n{bad}\n]}}\n')
        expected_at = "access_requests.json:3"
    write_ndjson(here / "data" / "scim_updates.ndjson", [])
    result = run("rules.yaml", "--data", "data", "--results", "r.json", "--quiet", "--engine", engine)
    by_id = {r["id"]: r for r in json.loads((here / "r.json").read_text())["results"]}
    assert by_id["scim"]["status"] == "pass"
    if engine == "duckdb" and layout == "ndjson":
        # DuckDB reads NDJSON itself and only the columns the rules need: the odd field may simply be unread.
        assert by_id["denied"]["status"] in ("fail", "error"), by_id["denied"]["message"]
        return
    assert result.exit_code == 2
    assert by_id["denied"]["status"] == "error"
    message = by_id["denied"]["message"]
    assert expected_at in message and why in message, message


def test_values_of_the_wrong_type_are_counted_and_named_with_their_first_place(here):
    write(here / "rules.yaml", DENIED + "  - id: emails\n    title: t\n    source: access_requests\n    window: 1h\n"
                               "    filter: {user_email: {contains: '@'}}\n")
    records = [access(allowed=False, created_at="2026-11-15T11:30:00Z"),
               access(allowed="false", created_at="2026-11-15T11:31:00Z"),
               access(allowed=0, created_at="2026-11-15T11:32:00Z"),
               {k: v for k, v in access(created_at="2026-11-15T11:33:00Z").items() if k != "allowed"}]
    data(here, records)
    result = run("rules.yaml", "--data", "data", "--results", "r.json")
    assert result.exit_code == 1
    warning = "access_requests: 3 records with allowed not a boolean, first at data/access_requests.ndjson:2"
    assert any(line.startswith(f"warning: {warning}") for line in result.output.splitlines()), result.output
    doc = json.loads((here / "r.json").read_text())
    [said] = [w for w in doc["warnings"] if w.startswith(warning)]
    assert "a string ('false')" in said
    assert "rules filtering on allowed (denied)" in said  # the rule reading it, not `emails`
    data(here, [records[0], {**records[0], "allowed": None}])  # null is a value, not a wrong type
    run("rules.yaml", "--data", "data", "--results", "r.json", "--quiet")
    assert json.loads((here / "r.json").read_text())["warnings"] == []


# --- internal errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True])
def test_an_internal_error_exits_2_with_or_without_debug(here, monkeypatch, debug):
    write(here / "rules.yaml", DENIED)
    data(here, [access()])

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("auditor.run.runner.run", broken)
    result = auditor("run", "rules.yaml", "--data", "data", "--at", AT, *(["--debug"] if debug else []))
    assert result.exit_code == 2
    assert "internal error (RuntimeError: a bug)" in result.stderr
    assert ("Traceback" in result.stderr) == debug


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59-14:00"])
@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_text_time_outside_the_supported_times_errors_the_rules_of_its_log_at_its_line(here, stamp, engine):
    scim_rule = "  - id: scim\n    title: t\n    source: scim_updates\n    filter: {idp_id: i}\n"
    write(here / "rules.yaml", DENIED + scim_rule)
    data(here, [access(allowed=False, created_at="2026-11-15T11:30:00Z")])
    write_ndjson(here / "data" / "scim_updates.ndjson", [scim(logged_at="2026-11-15T11:00:00Z", idp_id="i"),
                                                         scim(logged_at=stamp, idp_id="i")])
    result = run("rules.yaml", "--data", "data", "--results", "r.json", "--quiet", "--engine", engine)
    assert result.exit_code == 2
    by_id = {r["id"]: r for r in json.loads((here / "r.json").read_text())["results"]}
    assert by_id["denied"]["status"] == "fail"  # the other log is read and decided
    assert by_id["scim"]["status"] == "error"
    message = by_id["scim"]["message"]
    assert f"scim_updates.ndjson:2: error: logged_at: '{stamp}' is outside the supported times" in message
