"""The command line: `main(argv) -> int` and one click command per verb."""

from auditor.cli.main import main

__all__ = ["main"]
