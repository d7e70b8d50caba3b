"""The command line: `main(argv) -> int`, the click group `cli`, one module per command in cli/commands/."""

from auditor.cli.app import cli, main

__all__ = ["cli", "main"]
