"""Text from rules and logs made safe to print: control characters shown as escapes, no workflow commands.

A rule key, a test name or a logged value can hold terminal escape sequences (ESC, OSC, BEL), bidi
overrides that hide text, or a newline followed by `::error ...`, which GitHub Actions reads as a workflow
command when it starts a line of a step's output. Whatever reaches a terminal, a log or a human-facing report
goes through `visible` first.
"""

from __future__ import annotations

import re

# C0 controls except tab/LF/CR, DEL, C1 controls, surrogates, non-characters, bidi overrides/isolates.
_CONTROLS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[{_CONTROLS}]")
_CONTROL_OR_NEWLINE = re.compile(f"[{_CONTROLS}\n\r]")
# `::` opening a line (after blanks) starts a GitHub Actions workflow command; `\x3a:` reads the same to a person.
_COMMAND = re.compile(r"(^|[\n\r])([ \t]*)::")


def visible(text: str, *, one_line: bool = False) -> str:
    """Text with control characters replaced by escapes such as \\x1b or \\u202e and a line-opening `::` as
    `\\x3a:`; with one_line, newlines too (for diagnostics and other one-line messages)."""
    pattern = _CONTROL_OR_NEWLINE if one_line else _CONTROL
    return _COMMAND.sub(r"\1\2\\x3a:", pattern.sub(_escape, text))


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
