"""The sandbox for users' templates: Jinja's, plus limits on how much text one template can make.

Jinja's sandbox stops a template from reaching Python internals, but not from asking for ten gigabytes:
`{{ "a" * 10**10 }}`, `{{ "%9999999999s" % x }}`, `{{ x|center(10**10) }}`. Here every operation that can
build a large string at once is checked before it runs, and the whole output is counted as it is made.
"""

from __future__ import annotations

import functools
import operator
import re
import string
from collections.abc import Callable, Iterator
from typing import Any

from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment, SecurityError

MAX_STRING = 1 << 24  # characters (or items) one operation may produce: 16 Mi
MAX_OUTPUT = 1 << 26  # characters one template may write: 64 Mi
_MAX_EXPONENT_BITS = 1 << 16  # `**` results up to about 20,000 decimal digits
_WIDTH = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_PADDING_FILTERS = frozenset({"center", "indent", "wordwrap", "truncate", "format"})
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


class LimitedSandbox(SandboxedEnvironment):
    """A SandboxedEnvironment whose string-building operations are bounded by MAX_STRING."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Context, op: str, left: Any, right: Any) -> Any:
        """`*`, `**` and `%` checked for the size of what they would make, then done."""
        if op == "*":
            _check_repeat(left, right)
            _check_repeat(right, left)
            return operator.mul(left, right)
        if op == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0:
                if max(abs(left), 2).bit_length() * right > _MAX_EXPONENT_BITS:
                    raise SecurityError(f"{left} ** {right} is too large for a template")
            return operator.pow(left, right)
        if isinstance(left, str):
            _check_widths(left, right)
        return operator.mod(left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """A call, refused when a padding method (str.center, ljust, ...) is asked for too wide a result."""
        if getattr(__obj, "__name__", None) in _PADDING_METHODS and isinstance(getattr(__obj, "__self__", None), str):
            _check_sizes(args, kwargs, __obj.__name__)
        return super().call(__context, __obj, *args, **kwargs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Templates call filters directly (not through `call`): the padding ones are wrapped with the check.
        for name in _PADDING_FILTERS:
            self.filters[name] = _guarded(self.filters[name], name)

    def wrap_str_format(self, value: Any) -> Any:
        """str.format and format_map (Jinja's sandboxed ones), with each field's width bounded first."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        specs = [spec for _, _, spec, _ in string.Formatter().parse(value.__self__) if spec]

        def limited(*args: Any, **kwargs: Any) -> str:
            for spec in specs:
                for number in re.findall(r"\d+", spec):
                    if int(number) > MAX_STRING:
                        raise SecurityError(f"format width {number} is too large for a template")
                if "{" in spec:  # a width given as an argument: {:{}}
                    values = args[0].values() if value.__name__ == "format_map" and args else (*args, *kwargs.values())
                    _check_sizes(tuple(values), {}, "format")
            return wrapped(*args, **kwargs)

        return limited


def limited_output(chunks: Iterator[str], label: str) -> str:
    """Join a template's output, stopping with SecurityError once it passes MAX_OUTPUT characters."""
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise SecurityError(f"{label} writes more than {MAX_OUTPUT:,} characters")
        parts.append(chunk)
    return "".join(parts)


def _guarded(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(function)  # keeps Jinja's pass_environment/pass_eval_context marks
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if name == "format":
            template = next((a for a in args if isinstance(a, str)), "")
            _check_widths(template, args[args.index(template) + 1:] if template in args else ())
        else:
            _check_sizes(args, kwargs, name)
        return function(*args, **kwargs)

    return guarded


def _check_repeat(sequence: Any, times: Any) -> None:
    if isinstance(sequence, str | list | tuple) and isinstance(times, int) and not isinstance(times, bool):
        if len(sequence) * times > MAX_STRING:
            raise SecurityError(f"repetition making {len(sequence) * times:,} items is too large for a template "
                                f"(at most {MAX_STRING:,})")


def _check_sizes(args: Any, kwargs: Any, name: str) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_STRING:
            raise SecurityError(f"{name}({value}) is too large for a template (at most {MAX_STRING:,})")


def _check_widths(template: str, values: Any) -> None:
    """printf-style widths and precisions (`%9999999999s`, `%*s`) must stay within MAX_STRING."""
    star_values = iter(values if isinstance(values, tuple | list) else (values,))
    for match in _WIDTH.finditer(template):
        for part in match.groups():
            if part is None:
                continue
            number = next(star_values, 0) if part == "*" else int(part)
            if isinstance(number, int) and number > MAX_STRING:
                raise SecurityError(f"format width {number} is too large for a template")
