"""Start-up cost: `auditor --help` lists the commands without importing them, and `validate` imports none of
the run's heavy libraries (the time itself is measured in benchmarks/, not here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click

from auditor.cli.app import COMMANDS, cli

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("httpx", "jinja2", "rich", "duckdb", "jsonschema", "pyarrow")


def _imported_after(*args: str) -> list[str]:
    code = ("import sys; from auditor.cli.app import main; main(sys.argv[1:]); "
            f"print('\\n' + __import__('json').dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_help_lists_each_command_with_its_own_summary():
    ctx = click.Context(cli)
    for name, (_, _, summary) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None
        assert click.Command(name, help=summary).get_short_help_str(1000) == command.get_short_help_str(1000), name
    assert sorted(cli.list_commands(ctx)) == sorted(COMMANDS)


def test_help_and_validate_import_no_heavy_library():
    assert _imported_after("--help") == []
    assert _imported_after("validate", str(REPO / "rules"), "--config", str(REPO / "auditor.yaml")) == ["jsonschema"]
