"""docs/rules.md: every YAML example is a file of one policy repository that validates and whose tests hold,
and the examples use every rule key, operator, expectation, test-case key and waiver key of the schemas."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from auditor.cli import cli
from auditor.core import resources

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)


def examples() -> dict[str, str]:
    """Each example's file name (its first line, `# file: NAME`) and text."""
    out = {}
    for block in BLOCK.findall(DOC.read_text(encoding="utf-8")):
        name = re.match(r"# file: (\S+)\n", block)
        assert name, f"a docs/rules.md example does not start with '# file: NAME': {block[:60]!r}"
        assert name.group(1) not in out, f"two examples are {name.group(1)}"
        out[name.group(1)] = block
    for name, block in re.findall(r"File `(\S+)`[^\n]*:\n```ndjson\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S):
        out[name] = block
    return out


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    for name, text in examples().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_example_validates_and_its_tests_hold(repo):
    valid = CliRunner().invoke(cli, ["validate"])
    assert valid.exit_code == 0, valid.stderr
    assert valid.stdout.startswith("ok: ") and ", 2 waivers" in valid.stdout
    tested = CliRunner().invoke(cli, ["test"])
    assert tested.exit_code == 0, tested.stdout + tested.stderr


def _keys(value, found: set[str]) -> set[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            found.add(k)
            _keys(v, found)
    elif isinstance(value, list):
        for v in value:
            _keys(v, found)
    return found


def test_the_examples_use_every_key_and_operator():
    used: set[str] = set()
    for name, text in examples().items():
        if name.endswith(".yaml"):
            _keys(yaml.safe_load(text), used)
    rules = json.loads(resources.schema_path("rules").read_text())["$defs"]
    waivers = json.loads(resources.schema_path("waivers").read_text())["$defs"]["waiver"]
    config_keys = {"rules", "waivers", "variables", "scim_idp_ids"}  # the rest is in the keys table
    wanted = (set(rules["rule"]["properties"]) | set(rules["operators"]["properties"])
              | set(rules["expect"]["properties"]) | set(rules["test_case"]["properties"])
              | set(rules["correlate"]["properties"]) | set(waivers["properties"]) | config_keys)
    assert wanted - used == set()
    text = DOC.read_text(encoding="utf-8")
    for key in json.loads(resources.schema_path("config").read_text())["properties"]:
        assert f"| `{key}`" in text or f"`{key}`" in text, key
