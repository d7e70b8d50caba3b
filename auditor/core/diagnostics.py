"""Problems found in user input, each with a location; printed one per line, flake8-style."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class SourceLocation:
    """A position in a user's file (1-based line and column)."""

    path: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.path}:{self.line}:{self.col or 1}"
        return self.path


@dataclass(frozen=True)
class Diagnostic:
    """One problem: stable code, message, where it is and an optional hint on what to do."""

    code: str
    message: str
    location: SourceLocation | None = None
    hint: str | None = None

    def format(self) -> str:
        """`PATH:LINE:COL: error: MESSAGE (HINT)`, or `error: MESSAGE` when there is no file."""
        text = self.message + (f"; {self.hint}" if self.hint else "")
        if self.location is None:
            return f"error: {text}"
        return f"{self.location}: error: {text}"


class DiagnosticsError(Exception):
    """Raised at a stage boundary when input problems stop the pipeline; carries them all."""

    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__("\n".join(d.format() for d in diagnostics))
        self.diagnostics = diagnostics


def display_path(path: Path) -> str:
    """A path as users wrote it: relative to the current directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
