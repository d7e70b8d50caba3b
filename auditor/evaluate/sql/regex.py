"""Python regexes -> RE2 text with the same answers, or None when RE2 cannot say exactly the same.

`matches` means Python's `re.search` (auditor.language.conditions). RE2 (DuckDB) agrees with it only on a
subset, so a pattern is re-written from Python's own parse tree, element by element, and anything outside the
subset makes the whole pattern stay in Python (the engine then applies it to the rows its exact conditions
kept). Outside the subset: look-around and back-references (RE2 has none), `\\d \\w \\s \\b` (Unicode in
Python, ASCII in RE2), MULTILINE, scoped flags, negated or non-ASCII letters under IGNORECASE, and `$`
anywhere but at the end. Inside it, with the differences bridged:
- `$` at the end: Python's `$` also matches before a final newline; written as `(?:\\n?\\z)`.
- IGNORECASE: Python folds `i`/`I` also to U+0130 and U+0131, RE2 does not; those two are added explicitly.
  (Every other ASCII letter folds alike: compared over all code points below U+30000.)
"""

from __future__ import annotations

import re
import re._constants as C  # type: ignore[import-not-found]  # the stdlib's own parser, unstubbed
import re._parser as P  # type: ignore[import-not-found]

_DOTLESS = "\\x{130}\\x{131}"
_MAX_REPEAT = 1000  # RE2's limit on counted repetition


class _Untranslatable(Exception):
    pass


def to_re2(pattern: str) -> str | None:
    """The RE2 pattern matching (searching) exactly the strings `pattern` matches in Python, or None."""
    try:
        parsed = P.parse(pattern)
    except re.error:
        return None
    flags = parsed.state.flags
    if flags & (C.SRE_FLAG_MULTILINE | C.SRE_FLAG_ASCII | C.SRE_FLAG_LOCALE):
        return None
    try:
        body = _seq(list(parsed), bool(flags & C.SRE_FLAG_IGNORECASE), tail=True)
    except _Untranslatable:
        return None
    prefix = "(?s)" if flags & C.SRE_FLAG_DOTALL else ""
    return f"{prefix}{'(?i)' if flags & C.SRE_FLAG_IGNORECASE else ''}{body}"


def _seq(items: list, icase: bool, tail: bool) -> str:
    return "".join(_item(op, av, icase, tail and i == len(items) - 1) for i, (op, av) in enumerate(items))


def _char(code: int, icase: bool) -> str:
    if icase and chr(code) in "iI":
        return f"[iI{_DOTLESS}]"
    if icase and code > 127 and chr(code).lower() != chr(code).upper():
        raise _Untranslatable  # non-ASCII cased letters fold differently in the two engines
    ch = chr(code)
    return ch if ch.isascii() and ch.isalnum() else f"\\x{{{code:x}}}"


def _class_item(op, av, icase: bool) -> str:
    if op is C.LITERAL:
        if icase and chr(av) in "iI":
            return f"iI{_DOTLESS}"
        if icase and av > 127 and chr(av).lower() != chr(av).upper():
            raise _Untranslatable
        return _char(av, False)
    if op is C.RANGE:
        lo, hi = av
        if icase and hi > 127:
            raise _Untranslatable
        extra = _DOTLESS if icase and (lo <= ord("i") <= hi or lo <= ord("I") <= hi) else ""
        return f"{_char(lo, False)}-{_char(hi, False)}{extra}"
    raise _Untranslatable  # categories (\d, \w, \s) differ


def _item(op, av, icase: bool, tail: bool) -> str:
    if op is C.LITERAL:
        return _char(av, icase)
    if op is C.NOT_LITERAL:
        if icase and chr(av).lower() != chr(av).upper():
            raise _Untranslatable
        return f"[^{_char(av, False)}]"
    if op is C.ANY:
        return "."
    if op is C.IN:
        negate = bool(av) and av[0][0] is C.NEGATE
        items = av[1:] if negate else av
        if negate and icase:
            raise _Untranslatable
        return f"[{'^' if negate else ''}{''.join(_class_item(o, a, icase) for o, a in items)}]"
    if op in (C.MAX_REPEAT, C.MIN_REPEAT):
        lo, hi, sub = av
        if lo > _MAX_REPEAT or (hi is not C.MAXREPEAT and hi > _MAX_REPEAT):
            raise _Untranslatable
        count = f"{{{lo},}}" if hi is C.MAXREPEAT else f"{{{lo},{hi}}}"
        return f"(?:{_seq(list(sub), icase, False)}){count}{'?' if op is C.MIN_REPEAT else ''}"
    if op is C.SUBPATTERN:
        _, add, delete, sub = av
        if add or delete:
            raise _Untranslatable
        return f"(?:{_seq(list(sub), icase, tail)})"
    if op is C.BRANCH:
        return "(?:" + "|".join(_seq(list(alt), icase, tail) for alt in av[1]) + ")"
    if op is C.AT:
        if av is C.AT_BEGINNING or av is C.AT_BEGINNING_STRING:
            return "^"
        if av is C.AT_END_STRING:
            return "\\z"
        if av is C.AT_END and tail:
            return "(?:\\n?\\z)"
    raise _Untranslatable
