"""Variables: four definition sources and their precedence, typed whole-value references, text inside strings."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.load.loader import load_yaml_text
from auditor.load.variables import Variables, collect, substitute
from tests.helpers import project, write


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


CONFIG = "variables:\n  level: {default: config, description: where the value came from}\n"


def _level(tmp_path: Path, *, var_file: bool = False, env: bool = False, cli: bool = False):
    var_files = (write(tmp_path / "vars.yaml", "level: var-file\n"),) if var_file else ()
    variables, problems = collect(
        {"level": {"default": "config"}},
        list(var_files),
        {"AUDITOR_VAR_level": "env"} if env else {},
        ["level=cli"] if cli else [],
    )
    assert problems == []
    return variables.values["level"], variables.origins["level"]


def test_precedence_config_varfile_env_cli(tmp_path):
    assert _level(tmp_path) == ("config", "auditor.yaml")
    assert _level(tmp_path, var_file=True) == ("var-file", "vars.yaml")
    assert _level(tmp_path, var_file=True, env=True) == ("env", "$AUDITOR_VAR_level")
    assert _level(tmp_path, env=True) == ("env", "$AUDITOR_VAR_level")
    assert _level(tmp_path, var_file=True, env=True, cli=True) == ("cli", "--var")
    assert _level(tmp_path, cli=True) == ("cli", "--var")


def test_later_var_files_and_repeated_vars_win(tmp_path):
    a = write(tmp_path / "a.yaml", "x: 1\ny: a\n")
    b = write(tmp_path / "b.yaml", "x: 2\n")
    variables, problems = collect({}, [a, b], {}, ["z=1", "z=2"])
    assert problems == []
    assert variables.values == {"x": 2, "y": "a", "z": 2}


def test_values_parsed_as_yaml(tmp_path):
    variables, problems = collect({}, [], {"AUDITOR_VAR_n": "5", "AUDITOR_VAR_l": "[US, GB]", "OTHER": "x"},
                                  ["b=true", "s='5'", "e=", "t=a=b"])
    assert problems == []
    assert variables.values == {"n": 5, "l": ["US", "GB"], "b": True, "s": "5", "e": "", "t": "a=b"}


def test_upper_case_env_name_maps_to_declared_variable():
    variables, _ = collect({"max_denied": {"default": 5}}, [], {"AUDITOR_VAR_MAX_DENIED": "9"}, [])
    assert variables.values == {"max_denied": 9}


def test_bad_definitions_are_problems(tmp_path):
    bad_file = write(tmp_path / "bad.yaml", "- a\n")
    bad_name = write(tmp_path / "names.yaml", "ok: 1\nnot-ok: 2\n")
    _, problems = collect({}, [bad_file, bad_name, tmp_path / "missing.yaml"], {"AUDITOR_VAR_x": "[unclosed"},
                          ["novalue", "1x=2", "y=[bad"])
    lines = [p.format() for p in problems]
    assert lines[0] == "bad.yaml:1:1: error: a var file must be a mapping of NAME: value"
    assert lines[1] == "names.yaml:2:1: error: invalid variable name 'not-ok'; use letters, digits and '_'"
    assert lines[2].startswith("missing.yaml: error: file not found")
    assert lines[3].startswith("error: environment variable AUDITOR_VAR_x: value is not valid YAML")
    assert lines[4].startswith("error: --var 'novalue' is not NAME=VALUE")
    assert lines[5].startswith("error: --var '1x=2' is not NAME=VALUE")
    assert lines[6].startswith("error: --var y: value is not valid YAML")
    assert len(lines) == 7


def _subst(text: str, values: dict):
    doc, problems = load_yaml_text(text, Path("r.yaml"))
    assert problems == []
    return substitute(doc, Variables(values, {}))


def test_whole_value_reference_keeps_type():
    data, problems = _subst("a: ${var.l}\nb: '${var.n}'\nc: ${var.b}\nd: ${var.m}\n",
                            {"l": ["US", "GB"], "n": 5, "b": False, "m": {"k": 1}})
    assert problems == []
    assert data == {"a": ["US", "GB"], "b": 5, "c": False, "d": {"k": 1}}


def test_embedded_reference_formatted_as_text():
    data, problems = _subst("a: '@${var.d}'\nb: 'n=${var.n} b=${var.b} l=${var.l} z=${var.z}'\nc: [x, 'y-${var.d}']\n",
                            {"d": "example.com", "n": 5, "b": True, "l": ["a", 1], "z": None})
    assert problems == []
    assert data == {"a": "@example.com", "b": 'n=5 b=true l=["a", 1] z=', "c": ["x", "y-example.com"]}


def test_undefined_variables_named_with_their_line():
    _, problems = _subst("a: 1\nb:\n  c: ${var.nope}\n  d: 'x ${var.also} ${var.ok}'\n", {"ok": 1})
    assert [p.format().split(";")[0] for p in problems] == [
        "r.yaml:3:6: error: undefined variable 'nope'", "r.yaml:4:6: error: undefined variable 'also'"]


def test_non_references_left_alone():
    data, problems = _subst("a: '${notvar.x}'\nb: '$var.x'\nc: '${var.}'\n", {})
    assert problems == []
    assert data == {"a": "${notvar.x}", "b": "$var.x", "c": "${var.}"}


# --- end to end through the rule loader ----------------------------------------------------------------------

RULE = (
    "rules:\n"
    "  - id: a\n"
    "    title: 'Denied for ${var.domain}'\n"
    "    source: access_requests\n"
    "    filter:\n"
    "      country: ${var.countries}\n"
    "      user_email: {contains: '@${var.domain}', not_in: '${var.admins}'}\n"
    "    expect: {count: {max: '${var.max_denied}'}}\n"
)
CONF = ("variables:\n  countries: {default: [US]}\n  domain: {default: example.com}\n  admins: {default: [root@x]}\n"
        "  max_denied: {default: 5}\n")


def test_rule_variables_resolved_with_types(tmp_path):
    var_file = write(tmp_path / "prod.yaml", "domain: corp.example\n")
    proj = project(tmp_path, RULE, config=CONF, var_files=(var_file,), env={"AUDITOR_VAR_max_denied": "7"},
                   cli_vars=("countries=[GB, FR]",))
    assert proj.ok, [d.format() for d in proj.diagnostics]
    (rule,) = proj.rules
    assert rule.title == "Denied for corp.example"
    assert [(c.field, c.op, c.operand) for c in rule.conditions] == [
        ("country", "in", ["GB", "FR"]),
        ("user_email", "contains", "@corp.example"),
        ("user_email", "not_in", ["root@x"]),
    ]
    assert rule.expectations[0].max == 7


def test_variable_of_wrong_type_is_a_validation_error(tmp_path):
    proj = project(tmp_path, RULE, config=CONF, cli_vars=("max_denied=many",))
    assert [d.format() for d in proj.diagnostics] == [
        "rules/rules.yaml:8:27: error: rules[0].expect.count.max: expected an integer, got a string; "
        "the value comes from --var max_denied=many"]


def test_undefined_variable_in_rule_file(tmp_path):
    proj = project(tmp_path, RULE, config=CONF.replace("  admins: {default: [root@x]}\n", ""))
    assert [d.format().split(";")[0] for d in proj.diagnostics] == [
        "rules/rules.yaml:7:56: error: undefined variable 'admins'"]


def test_upper_case_environment_name_defines_a_variable_used_only_in_rules(tmp_path):
    proj = project(tmp_path, "rules:\n  - id: a\n    title: t\n    source: access_requests\n"
                   "    filter:\n      country: ${var.countries}\n", env={"AUDITOR_VAR_COUNTRIES": "[US, GB]"})
    assert proj.diagnostics == ()
    assert proj.rules[0].conditions[0].operand == ["US", "GB"]
