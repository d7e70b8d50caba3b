"""Fuzzing the inputs: random and mutated rule files, config, waivers and data lines never crash auditor.

Every input is run through the real CLI (`validate`, and `run` over files): the exit code is 0, 1 or 2,
nothing prints a traceback or an internal error, a rejected file is reported with its path, line and
column, and a bad data line makes the rules reading it `error` with a message naming the file.

Mutations start from valid seeds (a compact policy using every feature, the bundled waivers) and apply
text edits (delete, insert YAML punctuation, duplicate or swap lines, re-indent, truncate) or tree edits
(replace any node by a value of another type, drop or add keys), so most inputs are almost valid: the
interesting ones.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.cli import cli
from tests.property.model import examples

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

AT = "2026-11-15T12:00:00Z"
COVERS = "2026-11-01T00:00:00Z/2026-12-01T00:00:00Z"  # the records hold every record of the windows
LOCATED = re.compile(r"^(?P<path>[^\n]+?):(?P<line>\d+):(?P<col>\d+): error: \S")

RULES = """\
rules:
  - id: denied-burst
    title: No user exceeds 3 denied logins
    severity: high
    tags: [soc2:CC6.1]
    source: access_requests
    window: 24h
    filter:
      allowed: false
      user_email: {not_contains: "@svc.", not_in: ["${var.admins}"]}
      ip_address: {not_cidr: "${var.office}"}
    group_by: user_email
    expect:
      count: {max: 3}
    evidence: 2
  - id: admin-ratio
    title: Admin console only from the office
    source: access_requests
    since: 2d
    until: 1h
    filter: {app_domain: admin.example.com, country: [US, DE]}
    expect:
      ratio: {where: {ip_address: {cidr: 10.0.0.0/8}}, min: 0.5}
      distinct: {field: user_email, max: 4}
  - id: scim-heartbeat
    title: Each IdP syncs daily
    source: scim_updates
    window: 1d
    filter: {status: SUCCESS, request_method: [PATCH, PUT], resource_user_email: {matches: "(?i)@example"}}
    group_by: idp_id
    for_each: {idp_id: [idp-0, idp-1]}
    expect:
      count: {min: 1}
"""
CONFIG = """\
scim_idp_ids: [idp-0, idp-1]
per_page: 500
variables:
  admins: {default: root@example.com, description: break-glass}
  office: {default: [203.0.113.0/24, "2001:db8::/32"]}
"""
WAIVERS = """\
waivers:
  - rule: denied-burst
    match: {user_email: bob@example.com}
    justification: Known flaky SSO for Bob
    owner: secops@example.com
    ticket: SEC-1
    expires: 2026-12-01
  - rule: scim-heartbeat
    justification: Azure quarantined
    owner: iam@example.com
    expires: "2026-11-20T00:00:00Z"
"""
ACCESS_LINE = {"action": "login", "allowed": False, "app_domain": "admin.example.com", "app_uid": "u-1",
               "connection": "okta", "created_at": "2026-11-15T11:00:00.25Z", "ip_address": "10.1.2.3",
               "ray_id": "abc", "user_email": "bob@example.com", "country": "US"}
SCIM_LINE = {"cf_resource_id": "c", "error_description": None, "idp_id": "idp-0", "idp_resource_id": "r",
             "logged_at": "2026-11-15T10:00:00Z", "request_body": "{}", "request_method": "PATCH",
             "resource_group_name": "G", "resource_type": "USER", "resource_user_email": "u@example.com",
             "status": "SUCCESS"}

PUNCTUATION = [*":{}[]-#&*!|>'\"%@`,?\t\n ", "\u00e9", "\u202e", "\x00", "\ufeff", "${var.", "${var.nope}",
               "!!python/object/apply:os.system ['false']", "<<: *x", "&x ", "*x", "---\n", "...\n", "~", "1e999",
               "0x1F", ".nan", "- "]
# Durations and times at and past the supported range (1970 to 8999, at most 36500d).
EXTREME_TIMES = ["99999999w", "36500d", "36501d", "99999999999999999999d", "5218w", "0001-01-01T00:00:00Z",
                 "1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "8999-12-31T23:59:59Z", "9000-01-01T00:00:00Z",
                 "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True), st.text(max_size=12),
    st.sampled_from(["24h", "0s", "-1h", "99999999w", "2026-13-45T99:00:00Z", "${var.nope}", "${var.admins}",
                     "[", "^(unclosed", "10.0.0.0/33", "access_requests", "scim_updates", "correlation", "eq",
                     "x" * 5000]),
    st.sampled_from(EXTREME_TIMES),
    st.lists(st.sampled_from(["a", 1, None, True]), max_size=3),
    st.dictionaries(st.sampled_from(["eq", "in", "max", "min", "field", "where", "id", "x"]),
                    st.sampled_from([1, "a", None, [], {}]), max_size=2),
)


# --- mutations -----------------------------------------------------------------------------------------


@st.composite
def text_mutation(draw: st.DrawFn, text: str) -> str:
    """One to three edits of the raw text."""
    for _ in range(draw(st.integers(1, 3))):
        lines = text.split("\n")
        kind = draw(st.sampled_from(["delete", "insert", "duplicate", "swap", "indent", "truncate", "replace"]))
        if kind == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
        elif kind in ("delete", "insert", "replace"):
            at = draw(st.integers(0, len(text)))
            end = min(len(text), at + draw(st.integers(0, 12)))
            inserted = "" if kind == "delete" else draw(st.sampled_from(PUNCTUATION))
            text = text[:at] + inserted + (text[end:] if kind != "insert" else text[at:])
        elif len(lines) > 1:
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if kind == "duplicate":
                lines.insert(j, lines[i])
            elif kind == "swap":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines[i] = " " * draw(st.integers(0, 9)) + lines[i].lstrip()
            text = "\n".join(lines)
    return text


def _paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


@st.composite
def tree_mutation(draw: st.DrawFn, text: str) -> str:
    """Replace, drop or add one node of the parsed document, then write it back as YAML."""
    doc = yaml.safe_load(text)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        kind = draw(st.sampled_from(["replace", "drop", "add"]))
        if not path:
            doc = draw(ODD_VALUES) if kind == "replace" else doc
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if kind == "replace":
            parent[path[-1]] = draw(ODD_VALUES)
        elif kind == "drop":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["filtre", "window", "expect", "extra", "id", "match", "default"]))] = (
                draw(ODD_VALUES))
        else:
            parent.append(draw(ODD_VALUES))
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def mutated(seed: str) -> st.SearchStrategy[str]:
    return st.one_of(text_mutation(seed), tree_mutation(seed))


# --- running the CLI -------------------------------------------------------------------------------------


@contextmanager
def project(rules: str = RULES, config: str = CONFIG, waivers: str = WAIVERS,
            data: dict[str, str] | None = None) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="auditor-fuzz-") as folder:
        root = Path(folder)
        (root / "rules").mkdir()
        (root / "rules" / "policy.yaml").write_text(rules, encoding="utf-8", errors="surrogatepass")
        (root / "auditor.yaml").write_text(config, encoding="utf-8", errors="surrogatepass")
        (root / "waivers.yaml").write_text(waivers, encoding="utf-8", errors="surrogatepass")
        (root / "data").mkdir()
        lines = data or {"access_requests.ndjson": json.dumps(ACCESS_LINE) + "\n",
                         "scim_updates.ndjson": json.dumps(SCIM_LINE) + "\n"}
        for name, text in lines.items():
            (root / "data" / name).write_bytes(text.encode("utf-8", "surrogatepass"))
        yield root


def invoke(root: Path, command: str, *extra: str) -> Result:
    args = [command, str(root / "rules"), "--config", str(root / "auditor.yaml"), "--waivers",
            str(root / "waivers.yaml"), *extra]
    if command == "run":
        args += ["--data", str(root / "data"), "--data-covers", COVERS, "--at", AT, "--quiet", "--no-progress",
                 "--results", str(root / "results.json")]
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def assert_no_crash(result: Result) -> None:
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code in (0, 1, 2), output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "internal error" not in output, output[-3000:]


INPUTS = ("policy.yaml", "auditor.yaml", "waivers.yaml")


def assert_located(result: Result) -> None:
    """Rejected input is reported `PATH:LINE:COL: error: ...`, naming one of the input files (a broken config
    may show up as undefined variables in the rules that use them)."""
    if result.exit_code != 2:
        return
    located = [m for m in map(LOCATED.match, result.stderr.splitlines()) if m]
    assert any(Path(m["path"]).name in INPUTS and int(m["line"]) >= 1 and int(m["col"]) >= 1 for m in located), (
        result.stderr)


# --- the fuzz tests ----------------------------------------------------------------------------------------


def test_the_seeds_are_valid_and_run():
    with project() as root:
        result = invoke(root, "validate")
        assert result.exit_code == 0, result.stderr
        assert_no_crash(invoke(root, "run"))


def validate_then_run(root) -> None:
    """validate never crashes and locates what it rejects; what it accepts runs without crashing."""
    result = invoke(root, "validate")
    assert_no_crash(result)
    assert_located(result)
    if result.exit_code == 0:
        assert_no_crash(invoke(root, "run"))


@settings(max_examples=examples(60))
@given(mutated(RULES))
def test_mutated_rule_files_never_crash(text):
    with project(rules=text) as root:
        validate_then_run(root)


@settings(max_examples=examples(40))
@given(mutated(CONFIG))
def test_mutated_config_never_crashes(text):
    with project(config=text) as root:
        validate_then_run(root)


@settings(max_examples=examples(40))
@given(mutated(WAIVERS))
def test_mutated_waivers_never_crash(text):
    with project(waivers=text) as root:
        validate_then_run(root)


@settings(max_examples=examples(30))
@given(st.text(max_size=300), st.sampled_from(["policy.yaml", "auditor.yaml", "waivers.yaml"]))
def test_random_text_in_any_input_file_never_crashes(text, target):
    files = {"policy.yaml": RULES, "auditor.yaml": CONFIG, "waivers.yaml": WAIVERS, target: text}
    with project(rules=files["policy.yaml"], config=files["auditor.yaml"], waivers=files["waivers.yaml"]) as root:
        result = invoke(root, "validate")
        assert_no_crash(result)
        assert_located(result)


def _line_mutation(record: dict[str, Any]) -> st.SearchStrategy[str]:
    line = json.dumps(record)
    field_edit = st.builds(lambda k, v: json.dumps({**record, k: v}, default=str), st.sampled_from(sorted(record)),
                           ODD_VALUES)
    return st.one_of(text_mutation(line), field_edit,
                     st.builds(lambda k: json.dumps({x: y for x, y in record.items() if x != k}),
                               st.sampled_from(sorted(record))),
                     st.sampled_from(["[]", "null", "42", '"x"', "{", '{"a": NaN}', "{}", "\ufeff{}", "1" * 400]))


@settings(max_examples=examples(60))
@given(st.sampled_from(["access_requests", "scim_updates"]), st.data())
def test_mutated_data_lines_make_rules_errors_that_name_the_file(source, data):
    record = ACCESS_LINE if source == "access_requests" else SCIM_LINE
    bad = data.draw(_line_mutation(record))
    good = json.dumps(record)
    name = f"{source}.ndjson"
    lines = {"access_requests.ndjson": json.dumps(ACCESS_LINE) + "\n",
             "scim_updates.ndjson": json.dumps(SCIM_LINE) + "\n", name: f"{good}\n{bad}\n{good}\n"}
    with project(data=lines) as root:
        result = invoke(root, "run")
        assert_no_crash(result)
        doc = json.loads((root / "results.json").read_text())
        for r in doc["results"]:
            if r["status"] == "error":
                assert name in r["message"], r["message"]  # the file, and (when known) its line
        assert (result.exit_code == 2) == any(r["status"] == "error" for r in doc["results"])


# --- hostile classes: extreme times, deep nesting, huge integers, lone surrogates ------------------------------


TIME_KEYS = st.sampled_from(["window", "since", "until"])


def _top_level(lines: list[str]) -> list[int]:
    """Where a new top-level key can go: before a line that starts one, or at the end."""
    return [i for i, line in enumerate(lines) if line and not line[0].isspace()] + [len(lines)]


@settings(max_examples=examples(12))
@given(TIME_KEYS, st.sampled_from(EXTREME_TIMES) | st.builds("{}{}".format, st.integers(0, 10**25),
                                                               st.sampled_from("smhdw")))
def test_extreme_durations_and_times_in_rules_never_crash(key, value):
    rule = f"rules:\n  - id: t\n    title: t\n    source: access_requests\n    {key}: {value}\n"
    with project(rules=rule) as root:
        validate_then_run(root)


@settings(max_examples=examples(12))
@given(st.sampled_from(["--at", "--period", "--step"]),
       st.sampled_from(EXTREME_TIMES) | st.sampled_from(["9999", "0001", "9999-12", "9999-W52", "9999-Q4", "8999",
                                                         "0001-01-01T00:00:00Z/9999-12-31T23:59:59Z"]))
def test_extreme_times_in_options_are_usage_errors_or_runs(option, value):
    extra = [option, value] if option != "--step" else ["--period", "2026-11", "--step", value]
    with project() as root:
        result = invoke(root, "plan", *extra)
        assert_no_crash(result)
        if result.exit_code == 2:
            assert result.stderr.startswith("error: --"), result.stderr


@settings(max_examples=examples(10))
@given(st.integers(150, 800), st.sampled_from(["[", "{a: "]), st.sampled_from(INPUTS), st.data())
def test_deep_nesting_in_any_input_file_is_located(depth, opener, target, data):
    closer = "]" if opener == "[" else "}"
    deep = opener * depth + "1" * (opener != "[") + closer * depth
    files = {"policy.yaml": RULES, "auditor.yaml": CONFIG, "waivers.yaml": WAIVERS}
    lines = files[target].split("\n")
    at = data.draw(st.sampled_from(_top_level(lines)))
    lines.insert(at, f"deep: {deep}")
    files[target] = "\n".join(lines)
    with project(rules=files["policy.yaml"], config=files["auditor.yaml"], waivers=files["waivers.yaml"]) as root:
        result = invoke(root, "validate")
        assert_no_crash(result)
        assert result.exit_code == 2
        assert_located(result)


@settings(max_examples=examples(10))
@given(st.integers(4000, 6000), st.sampled_from(INPUTS), st.data())
def test_huge_integers_in_any_input_file_are_located_at_their_line(digits, target, data):
    files = {"policy.yaml": RULES, "auditor.yaml": CONFIG, "waivers.yaml": WAIVERS}
    lines = files[target].split("\n")
    at = data.draw(st.sampled_from(_top_level(lines)))
    lines.insert(at, "huge: " + "7" * digits)
    files[target] = "\n".join(lines)
    with project(rules=files["policy.yaml"], config=files["auditor.yaml"], waivers=files["waivers.yaml"]) as root:
        result = invoke(root, "validate")
        assert_no_crash(result)
        assert result.exit_code == 2
        if digits > 4300:  # past Python's limit on integer text: reported where it is written
            assert f"{target}:{at + 1}:7: error: invalid YAML value" in result.stderr, result.stderr


HOSTILE_VALUES = st.one_of(
    st.integers(4000, 6000).map(lambda n: "9" * n),
    st.integers(60, 3000).map(lambda n: "[" * n + "]" * n),
    st.integers(60, 1000).map(lambda n: '{"a": ' * n + "0" + "}" * n),
    st.lists(st.sampled_from(["\\ud800", "\\udfff", "\\udc80", "a", "\\u202e", "\\u001b", "\\n::error::"]),
             min_size=1, max_size=6).map(lambda parts: '"' + "".join(parts) + '"'),
)


@settings(max_examples=examples(20))
@given(st.sampled_from(["user_email", "app_domain", "country", "extra"]), HOSTILE_VALUES)
def test_hostile_log_values_error_their_source_or_are_reported_validly(field, value):
    good = json.dumps(ACCESS_LINE)
    bad = good[:-1] + f', "{field}_": 0, "{field}": {value}}}'  # the field given twice: the last one counts
    lines = {"access_requests.ndjson": f"{good}\n{bad}\n", "scim_updates.ndjson": json.dumps(SCIM_LINE) + "\n"}
    with project(data=lines) as root:
        result = invoke(root, "run", "--report", f"sarif={root / 'r.sarif'}", "--report", f"html={root / 'r.html'}")
        assert_no_crash(result)
        doc = json.loads((root / "results.json").read_bytes().decode("utf-8"))  # valid UTF-8 JSON, whole
        json.loads((root / "r.sarif").read_bytes().decode("utf-8"))
        (root / "r.html").read_bytes().decode("utf-8")
        for r in doc["results"]:
            if r["status"] == "error" and r["source"] == "access_requests":
                assert "access_requests.ndjson:2" in r["message"], r["message"]
            if r["source"] == "scim_updates":
                assert r["status"] != "error", r["message"]
