"""The one validation entry point: every kind of problem with its exact file:line:col, all in one pass."""

from __future__ import annotations

import pytest

from auditor.core.model import TimeBound
from auditor.core.timeutil import US, parse_time
from auditor.load.validate import Inputs, load_project, rule_files
from tests.helpers import project, write


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


HEAD = "rules:\n  - id: a\n    title: t\n    source: access_requests\n"
SCIM_HEAD = "rules:\n  - id: a\n    title: t\n    source: scim_updates\n"
F = "rules/rules.yaml"


def problems(tmp_path, text: str, **kwargs) -> list[str]:
    return [d.format() for d in project(tmp_path, text, **kwargs).diagnostics]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # unknown field for the source, with a hint
        ("    filter: {user_id: x}\n",
         f"{F}:5:14: error: unknown field 'user_id' for source access_requests; did you mean 'user_email'?"),
        ("    filter: {status: SUCCESS}\n",
         f"{F}:5:14: error: unknown field 'status' for source access_requests; 'status' is a field of scim_updates"),
        ("    group_by: [user_email, nope]\n",
         f"{F}:5:28: error: unknown field 'nope' for source access_requests; fields: action, allowed, app_domain, "
         "app_uid, connection, created_at, ip_address, ray_id, user_email, country, app_type"),
        ("    group_by: nope\n", f"{F}:5:15: error: unknown field 'nope' for source access_requests; fields: "
         "action, allowed, app_domain, app_uid, connection, created_at, ip_address, ray_id, user_email, country, "
         "app_type"),
        ("    expect: {distinct: {field: idp_id, max: 1}}\n",
         f"{F}:5:32: error: unknown field 'idp_id' for source access_requests; 'idp_id' is a field of scim_updates"),
        # operator not fitting the field type
        ("    filter: {allowed: {contains: x}}\n",
         f"{F}:5:24: error: operator 'contains' does not apply to bool field 'allowed'; 'contains' applies to: "
         "action, app_domain, app_uid, connection, created_at, ip_address, ray_id, user_email, country, app_type"),
        ("    filter: {user_email: {cidr: 10.0.0.0/8}}\n",
         f"{F}:5:27: error: operator 'cidr' does not apply to string field 'user_email'; 'cidr' applies to: "
         "ip_address"),
        # wrong value type for the field
        ("    filter: {allowed: 'false'}\n",
         f"{F}:5:23: error: 'allowed' is a boolean: compare it with true or false, not 'false'"),
        ("    filter: {country: [US, 3]}\n",
         f"{F}:5:28: error: 'country' holds text: 3 is not a string; quote it: \"3\""),
        # invalid regex, invalid CIDR
        ("    filter: {user_email: {matches: '(['}}\n",
         f"{F}:5:36: error: invalid regular expression '([': unterminated character set at position 1"),
        ("    filter: {ip_address: {not_cidr: [10.0.0.0/8, 10.0.0.0/33]}}\n",
         f"{F}:5:50: error: invalid network: '10.0.0.0/33' does not appear to be an IPv4 or IPv6 network; "
         "write a CIDR such as 203.0.113.0/24"),
        # bad since/until
        ("    since: yesterday\n",
         f"{F}:5:12: error: 'yesterday' is neither an RFC 3339 timestamp nor a duration; "
         "e.g. 2026-11-01T00:00:00Z or 7d"),
        ("    since: 2026-11-01\n",
         f"{F}:5:12: error: '2026-11-01' is neither an RFC 3339 timestamp nor a duration; "
         "e.g. 2026-11-01T00:00:00Z or 7d"),
        ("    since: 1h\n    until: 2h\n", f"{F}:5:12: error: 'since' must be earlier than 'until'"),
        ("    since: 2026-11-02T00:00:00Z\n    until: 2026-11-01T00:00:00Z\n",
         f"{F}:5:12: error: 'since' must be earlier than 'until'"),
        ("    window: 1h\n    since: 2h\n", f"{F}:5:5: error: give either 'window' or 'since'/'until', not both"),
        # expectation bounds
        ("    expect: {count: {min: 5, max: 1}}\n",
         f"{F}:5:21: error: expectation 'count' has min 5 greater than max 1"),
        ("    expect: {distinct: {field: country}}\n", f"{F}:5:24: error: expectation 'distinct' needs min or max"),
        ("    expect: {ratio: {where: {}, max: 0.5}}\n",
         f"{F}:5:21: error: ratio needs at least one condition in 'where'"),
        ("    expect: {ratio: {where: {allowed: {matches: x}}, max: 0.5}}\n",
         f"{F}:5:40: error: operator 'matches' does not apply to bool field 'allowed'; 'matches' applies to: "
         "action, app_domain, app_uid, connection, created_at, ip_address, ray_id, user_email, country, app_type"),
    ],
)
def test_semantic_errors_at_their_position(tmp_path, body, expected):
    assert problems(tmp_path, HEAD + body) == [expected]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("    filter: {idp_id: x, request_method: delete}\n",
         f"{F}:5:41: error: 'request_method' is never 'delete': the API only has DELETE, PATCH, POST, PUT "
         "(values are case-sensitive); write 'DELETE'"),
        ("    filter: {idp_id: x, status: {in: [SUCCESS, failed]}}\n",
         f"{F}:5:48: error: 'status' is never 'failed': the API only has FAILURE, SUCCESS (values are "
         "case-sensitive)"),
        ("    filter: {resource_type: USER}\n",
         f"{F}:2:5: error: scim_updates rules need an idp_id: the API requires it; add filter: {{idp_id: <IdP id>}} "
         "or scim_idp_ids: [...] in auditor.yaml"),
        ("    filter: {idp_id: {neq: x}}\n",
         f"{F}:2:5: error: scim_updates rules need an idp_id: the API requires it; add filter: {{idp_id: <IdP id>}} "
         "or scim_idp_ids: [...] in auditor.yaml"),
    ],
)
def test_scim_errors(tmp_path, body, expected):
    assert problems(tmp_path, SCIM_HEAD + body) == [expected]


def test_scim_idp_id_from_filter_or_config(tmp_path):
    assert problems(tmp_path, SCIM_HEAD + "    filter: {idp_id: [a, b]}\n") == []
    assert problems(tmp_path, SCIM_HEAD, config="scim_idp_ids: [idp-1]\n") == []


def test_yaml_syntax_error_reported_like_any_problem(tmp_path):
    out = problems(tmp_path, HEAD + "    filter: {allowed: false\n")
    assert len(out) == 1
    assert out[0].startswith(f"{F}:6:1: error: invalid YAML: ")


def test_duplicate_key(tmp_path):
    assert problems(tmp_path, HEAD + "    title: again\n") == [f"{F}:5:5: error: duplicate key 'title'"]


def test_undefined_variable_reported_once_with_file_and_line(tmp_path):
    out = problems(tmp_path, HEAD + "    filter:\n      user_email: {not_in: '${var.admins}'}\n")
    assert out == [f"{F}:6:28: error: undefined variable 'admins'; define it under variables: in auditor.yaml, in a "
                   "--var-file, as AUDITOR_VAR_admins or with --var admins=..."]


def test_duplicate_ids_across_files(tmp_path):
    out = problems(tmp_path, {"rules/a.yaml": HEAD, "rules/b.yaml": HEAD.replace("title: t", "title: u")})
    assert out == ["rules/b.yaml:2:5: error: duplicate rule id 'a' (first defined at rules/a.yaml:2:5); "
                   "rule ids must be unique in a run"]


def test_all_problems_of_all_files_in_one_pass(tmp_path):
    bad_schema = (
        "rules:\n"
        "  - id: Bad_ID\n"  # 2: pattern
        "    title: t\n"
        "    source: access_requests\n"
        "    filtr: {allowed: false}\n"  # 5: unknown key
        "  - id: ok-1\n"
        "    title: t\n"
        "    source: access_requests\n"
        "    filter:\n"
        "      user_email: {matches: '('}\n"  # 10: regex (semantic, in a file that also has schema errors)
        "      ip_address: {cidr: 300.0.0.0/8}\n"  # 11: CIDR
        "  - id: ok-2\n"
        "    title: t\n"
        "    source: access_requests\n"
        "    severity: hgh\n"  # 15: enum
        "    since: 1h\n"
        "    until: 2h\n"
    )
    out = problems(tmp_path, {
        "rules/a.yaml": bad_schema,
        "rules/b.yaml": "rules:\n  - id: x\n    title: [oops\n",  # syntax error
        "rules/c.yaml": SCIM_HEAD.replace("id: a", "id: ok-1") + "    filter: {idp_id: '${var.idp}'}\n",
    })
    where = [line.split(": error: ")[0] for line in out]
    assert where == [
        "rules/a.yaml:2:9", "rules/a.yaml:5:5", "rules/a.yaml:10:29", "rules/a.yaml:11:26", "rules/a.yaml:15:15",
        "rules/a.yaml:16:12",  # the rule with a bad severity is still checked: its since/until are reversed
        "rules/b.yaml:4:1",
        "rules/c.yaml:2:5", "rules/c.yaml:5:22",
    ], out
    assert "'since' must be earlier than 'until'" in out[5]
    assert "duplicate rule id 'ok-1'" in out[7]
    assert "undefined variable 'idp'" in out[8]


def test_no_problems_builds_rules(tmp_path):
    proj = project(tmp_path, HEAD + "    severity: high\n    tags: [soc2:CC6.1]\n    window: 90m\n"
                   "    filter: {allowed: false, ip_address: {cidr: [10.0.0.0/8]}}\n    group_by: user_email\n"
                   "    expect: {count: {max: 5}, distinct: {field: ip_address, min: 1}}\n    evidence: 3\n")
    assert proj.ok
    (rule,) = proj.rules
    assert (rule.id, rule.severity, rule.tags, rule.group_by, rule.evidence) == (
        "a", "high", ("soc2:CC6.1",), ("user_email",), 3)
    assert rule.since == TimeBound(before_us=90 * 60 * US)
    assert rule.until == TimeBound(before_us=0)
    assert [(c.field, c.op, c.operand) for c in rule.conditions] == [
        ("allowed", "eq", False), ("ip_address", "cidr", ["10.0.0.0/8"])]
    assert [(e.kind, e.min, e.max, e.field) for e in rule.expectations] == [
        ("count", None, 5, None), ("distinct", 1, None, "ip_address")]
    assert str(rule.location) == f"{F}:2:5"


def test_defaults(tmp_path):
    (rule,) = project(tmp_path, HEAD).rules
    assert rule.severity == "medium"
    assert rule.evidence == 5
    assert rule.since == TimeBound(before_us=24 * 3600 * US)
    assert [(e.kind, e.max) for e in rule.expectations] == [("count", 0)]


def test_since_until_parsed(tmp_path):
    (rule,) = project(tmp_path, HEAD + "    since: 2026-11-01T00:00:00+02:00\n    until: 1d\n").rules
    assert rule.since == TimeBound(absolute_us=parse_time("2026-10-31T22:00:00Z"))
    assert rule.until == TimeBound(before_us=86400 * US)


def test_until_alone_is_the_default_window_ending_there(tmp_path):
    (rel,) = project(tmp_path, HEAD + "    until: 1h\n").rules
    assert (rel.since, rel.until) == (TimeBound(before_us=25 * 3600 * US), TimeBound(before_us=3600 * US))
    (ab,) = project(tmp_path, HEAD + "    until: 2026-11-02T00:00:00Z\n").rules
    assert ab.since == TimeBound(absolute_us=parse_time("2026-11-01T00:00:00Z"))


def test_directories_skip_config_waivers_and_hidden_folders(tmp_path):
    write(tmp_path / "repo" / "rules.yaml", "rules: []\n")
    write(tmp_path / "repo" / "auditor.yaml", "{}\n")
    write(tmp_path / "repo" / "waivers.yaml", "waivers: []\n")
    write(tmp_path / "repo" / ".github" / "workflows" / "audit.yml", "on: push\n")
    files, problems = rule_files([tmp_path / "repo"])
    assert [p.name for p in files] == ["rules.yaml"] and problems == []


def test_missing_paths_and_empty_files(tmp_path):
    write(tmp_path / "auditor.yaml", "{}\n")
    proj = load_project(Inputs(paths=(tmp_path / "nope",), config_path=tmp_path / "auditor.yaml"))
    assert [d.format() for d in proj.diagnostics] == [
        "error: rules path not found: nope; pass rule files or directories, or set rules: in auditor.yaml"]
    (tmp_path / "empty").mkdir()
    proj = load_project(Inputs(paths=(tmp_path / "empty",), config_path=tmp_path / "auditor.yaml"))
    assert [d.format() for d in proj.diagnostics] == ["error: no rule files (*.yaml, *.yml) in empty"]
    write(tmp_path / "e.yaml", "# nothing\n")
    proj = load_project(Inputs(paths=(tmp_path / "e.yaml",), config_path=tmp_path / "auditor.yaml"))
    assert [d.format() for d in proj.diagnostics] == [
        "e.yaml:1:1: error: empty rule file: expected a mapping with a 'rules:' list"]


def test_config_found_in_cwd_and_its_rules_paths(tmp_path):
    write(tmp_path / "policy" / "x.yml", HEAD)
    write(tmp_path / "auditor.yaml", "rules: policy\nscim_idp_ids: [i]\npushdown: documented\n")
    proj = load_project(Inputs())
    assert proj.ok, proj.diagnostics
    assert [r.id for r in proj.rules] == ["a"]
    assert proj.config.pushdown == "documented"
    assert proj.config.scim_idp_ids == ("i",)
    assert proj.config_sha256 and len(proj.config_sha256) == 64
    missing = load_project(Inputs(config_path=tmp_path / "other.yaml"))
    assert "config file not found" in missing.diagnostics[0].format()


def test_config_errors_do_not_hide_variable_defaults(tmp_path):
    out = problems(tmp_path, HEAD + "    filter: {country: '${var.c}'}\n",
                   config="pushdwn: all\nvariables:\n  c: {default: [US]}\n")
    assert out == ["auditor.yaml:1:1: error: unknown key 'pushdwn' in config top level; did you mean 'pushdown'?"]


def test_rules_digest_changes_with_content(tmp_path):
    one = project(tmp_path, HEAD).rules_sha256
    two = project(tmp_path, HEAD.replace("title: t", "title: u")).rules_sha256
    assert one != two and len(one) == 64


def test_never_raises_on_hostile_input(tmp_path):
    texts = ["", "rules: 5\n", "rules: [5, null, [], {}]\n", "rules:\n  - id: a\n    title: t\n    source: x\n",
             "rules:\n  - {id: a, title: t, source: access_requests, filter: {allowed: {in: [1, {a: b}]}}}\n",
             "rules:\n  - {id: a, title: t, source: access_requests, expect: {ratio: {where: [x]}}}\n",
             "rules:\n  - {id: a, title: t, source: access_requests, group_by: []}\n",
             "rules:\n  - {id: a, title: t, source: access_requests, filter: {allowed: ${var.x}}}\n",
             "\ufeffrules: []\n", "rules: &a [*a]\n"]
    for i, text in enumerate(texts):
        out = problems(tmp_path / str(i), text)
        assert all(": error: " in line or line.startswith("error: ") for line in out)


def test_duplicate_ids_in_one_file(tmp_path):
    out = problems(tmp_path, HEAD + HEAD.replace("rules:\n", ""))
    assert out == [f"{F}:5:5: error: duplicate rule id 'a' (first defined at {F}:2:5); "
                   "rule ids must be unique in a run"]


def test_file_level_schema_error_does_not_hide_rule_problems(tmp_path):
    out = problems(tmp_path, HEAD + "    filter: {user_email: {matches: '('}}\nversion: 1\n")
    assert [line.split(": error: ")[0] for line in out] == [f"{F}:5:36", f"{F}:6:1"]
    assert "unknown key 'version'" in out[1]


def test_rule_with_schema_error_is_still_checked_with_the_broken_part_cut_out(tmp_path):
    text = (HEAD + "    severity: urgent\n    filter: {nope: 1}\n"  # schema error, and an unknown field
            + HEAD.replace("rules:\n", "").replace("id: a", "id: b") + "    filter: {nope: 1}\n")
    out = problems(tmp_path, text)
    assert [line.split(": error: ")[0] for line in out] == [f"{F}:5:15", f"{F}:6:14", f"{F}:10:14"]
    assert "unknown field 'nope'" in out[1] and "unknown field 'nope'" in out[2]
