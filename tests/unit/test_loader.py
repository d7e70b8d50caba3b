"""Safe YAML loading: positions of every node, duplicate keys, syntax errors at their line, no code execution."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.load.loader import Document, load_yaml, load_yaml_text, pointer_join


def load(tmp_path: Path, text: str, name: str = "f.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_yaml(path)


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_positions_of_values_and_keys(tmp_path):
    doc, problems = load(tmp_path, "rules:\n  - id: a\n    filter:\n      allowed: false\n")
    assert problems == []
    assert doc.data == {"rules": [{"id": "a", "filter": {"allowed": False}}]}
    assert doc.positions["/rules/0"] == (2, 5)
    assert doc.positions["/rules/0/id"] == (2, 9)
    assert doc.key_positions["/rules/0/id"] == (2, 5)
    assert doc.positions["/rules/0/filter/allowed"] == (4, 16)
    assert doc.key_positions["/rules/0/filter/allowed"] == (4, 7)
    assert str(doc.location("/rules/0/filter/allowed")) == "f.yaml:4:16"
    assert str(doc.location("/rules/0/filter/allowed", key=True)) == "f.yaml:4:7"


def test_location_falls_back_to_nearest_ancestor(tmp_path):
    doc, _ = load(tmp_path, "rules:\n  - id: a\n")
    assert str(doc.location("/rules/0/missing/deeper")) == "f.yaml:2:5"
    assert str(doc.location("/nothing")) == "f.yaml:1:1"


def test_pointer_escaping(tmp_path):
    assert pointer_join("/a", "b/c~d") == "/a/b~1c~0d"
    doc, _ = load(tmp_path, "x:\n  a/b: 1\n")
    assert doc.positions["/x/a~1b"] == (2, 8)


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        ("rules:\n  - id: a\n    id: b\n", "f.yaml:3:5", "duplicate key 'id'"),
        ("a: 1\nb:\n  c: 1\n  c: 2\n", "f.yaml:4:3", "duplicate key 'c'"),
    ],
)
def test_duplicate_keys_rejected_at_the_second_key(tmp_path, text, where, fragment):
    doc, problems = load(tmp_path, text)
    assert doc is None
    assert [p.format() for p in problems] == [f"{where}: error: {fragment}"]
    assert problems[0].code == "E102"


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        ("rules:\n  - id: x\n   title: bad\n", "f.yaml:3:4", "invalid YAML: expected <block end>"),
        ("rules:\n\t- id: x\n", "f.yaml:2:1", "found character '\\t'"),
        ("a: *nope\n", "f.yaml:1:4", "undefined alias 'nope'"),
        ("rules:\n  - id: c\n    title: [unclosed\n", "f.yaml:4:1", "flow sequence started at line 3"),
        ("a: b\n---\nc: d\n", "f.yaml:2:1", "expected a single document"),
        ("rules:\n  - id: b\x07\n", "f.yaml:2:10", "unacceptable character #x0007"),
        ("a: !!python/name:os.system x\n", "f.yaml:1:4", "could not determine a constructor"),
        ("? [x]\n: 2\n", "f.yaml:1:3", "a mapping key must be a plain value"),
    ],
)
def test_syntax_errors_are_one_line_at_their_position(tmp_path, text, where, fragment):
    doc, problems = load(tmp_path, text)
    assert doc is None
    assert len(problems) == 1
    line = problems[0].format()
    assert line.startswith(f"{where}: error: "), line
    assert fragment in line
    assert "\n" not in line


def test_timestamps_stay_text_and_yes_no_keys_stay_names(tmp_path):
    doc, problems = load(tmp_path, "since: 2026-11-01T00:00:00Z\nday: 2026-11-01\non: yes\n1: x\n")
    assert problems == []
    assert doc.data == {"since": "2026-11-01T00:00:00Z", "day": "2026-11-01", "on": True, "1": "x"}


def test_merge_keys_and_anchors(tmp_path):
    doc, problems = load(tmp_path, "base: &b {allowed: false}\nrule:\n  <<: *b\n  id: a\nother: *b\n")
    assert problems == []
    assert doc.data["rule"] == {"allowed": False, "id": "a"}
    assert doc.data["other"] == {"allowed": False}


def test_alias_bomb_is_refused(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    doc, problems = load(tmp_path, "\n".join(lines) + "\n")
    assert doc is None
    assert "too large" in problems[0].message


def test_python_tags_never_run_code(tmp_path):
    doc, _ = load(tmp_path, "a: !!python/object/apply:os.system [touch pwned]\n")
    assert not (tmp_path / "pwned").exists()
    assert doc is None or doc.data == {"a": ["touch pwned"]}


def test_empty_document(tmp_path):
    doc, problems = load(tmp_path, "# only a comment\n")
    assert problems == []
    assert isinstance(doc, Document)
    assert doc.data is None


def test_missing_and_undecodable_files(tmp_path):
    doc, problems = load_yaml(tmp_path / "nope.yaml")
    assert doc is None
    assert problems[0].format() == f"nope.yaml: error: file not found: {tmp_path / 'nope.yaml'}"
    assert problems[0].code == "E100"
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00a")
    doc, problems = load_yaml(tmp_path / "bin.yaml")
    assert doc is None
    assert problems[0].format().startswith("bin.yaml: error: cannot read file")


def test_load_yaml_text_uses_given_path(tmp_path):
    doc, problems = load_yaml_text("a: [1\n", tmp_path / "x.yaml")
    assert doc is None
    assert problems[0].format().startswith("x.yaml:2:1: error: invalid YAML")
