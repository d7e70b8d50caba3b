"""JSON Schema validation of loaded documents, with errors mapped to file:line:col and hints."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from auditor.core import resources
from auditor.core.diagnostics import Code, Diagnostic
from auditor.load.loader import Document, pointer_join


@cache
def validator(name: str) -> Draft202012Validator:
    """The validator for schemas/<name>.schema.json (loaded once per process)."""
    with resources.schema_path(name).open(encoding="utf-8") as fh:
        schema = json.load(fh)
    return Draft202012Validator(schema)


@cache
def definition_validator(name: str, definition: str) -> Draft202012Validator:
    """A validator for one `$defs` entry of schemas/<name>.schema.json (e.g. a single rule)."""
    schema = validator(name).schema
    if not isinstance(schema, dict):  # our own schema files are objects; a boolean schema has no $defs
        raise TypeError(f"schemas/{name}.schema.json is not a JSON object")
    defs = schema["$defs"]
    return Draft202012Validator({"$defs": defs, "$ref": f"#/$defs/{definition}"})


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """`did you mean 'filter'?` for a close match, else None."""
    close = difflib.get_close_matches(str(word), sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _pointer(path: Iterable[Any]) -> str:
    p = ""
    for part in path:
        p = pointer_join(p, part)
    return p


def _where(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "top level"


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "empty"}.get(
        type(value), "a number"
    )


def _specific(error: ValidationError) -> ValidationError:
    """Descend through anyOf/oneOf to the branch that fits the value's shape."""
    while error.validator in ("anyOf", "oneOf") and error.context:
        # Drop the branches written for another kind of value (a mapping was meant as the operator
        # mapping, a list as a list): report what is wrong inside the branch that fits.
        candidates = [e for e in error.context if not (e.validator == "type" and not e.relative_path)]
        candidates = candidates or error.context
        chosen = best_match(candidates)
        if chosen is None or chosen is error:
            break
        error = chosen
    return error


def _diagnostic(doc: Document, error: ValidationError, what: str) -> list[Diagnostic]:
    error = _specific(error)
    path = list(error.absolute_path)
    pointer = _pointer(path)
    where = _where(path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    v = error.validator
    # Typed `Any | Unset` by the stubs: Unset only on errors built by hand, never on iter_errors() ones.
    expected_value: Any = error.validator_value
    if v == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(schema.get("properties", {}))
        out = []
        for key in error.instance:
            if key in allowed:
                continue
            kind = "operator" if allowed >= {"eq", "neq", "in"} else "key"
            loc = doc.location(pointer_join(pointer, key), key=True)
            hint = did_you_mean(key, allowed) or f"allowed: {', '.join(sorted(allowed))}"
            out.append(Diagnostic(Code.UNKNOWN_KEY, f"unknown {kind} '{key}' in {what} {where}", loc, hint))
        return out
    loc = doc.location(pointer)
    if v == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [Diagnostic(Code.MISSING_KEY, f"missing required key '{missing}' in {what} {where}", loc)]
    if v == "enum":
        choices = [str(c) for c in expected_value]
        close = did_you_mean(str(error.instance), choices)
        return [Diagnostic(Code.NOT_ONE_OF,
                           f"{where}: {error.instance!r} is not one of {', '.join(choices)}", loc, close)]
    if v == "type":
        names = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
                 "number": "a number", "boolean": "a boolean", "null": "empty"}
        expected = expected_value
        expected = [expected] if isinstance(expected, str) else expected
        expected = " or ".join(names.get(e, e) for e in expected)
        return [Diagnostic(Code.WRONG_TYPE, f"{where}: expected {expected}, got {_type_name(error.instance)}", loc)]
    if v == "pattern":
        described = {
            "^[a-z0-9][a-z0-9_.-]*$": "lowercase letters, digits, '_', '.', '-' (starting with a letter or digit)",
            "^[0-9]+[smhdw]$": "a duration: an integer and s, m, h, d or w (e.g. 90m, 24h, 30d)",
            "^[a-z_]+$": "a field name (lowercase letters and '_')",
        }.get(expected_value, f"the pattern {expected_value}")
        return [Diagnostic(Code.WRONG_FORMAT, f"{where}: {error.instance!r} must be {described}", loc)]
    if v == "minProperties":
        return [Diagnostic(Code.EMPTY, f"{where}: must not be empty", loc)]
    return [Diagnostic(Code.SCHEMA, f"{where}: {error.message}", loc)]


def validate_document(doc: Document, schema_name: str, what: str) -> list[Diagnostic]:
    """All schema problems of one document, in file order."""
    errors = sorted(validator(schema_name).iter_errors(doc.data), key=lambda e: list(map(str, e.absolute_path)))
    out: list[Diagnostic] = []
    for error in errors:
        out.extend(_diagnostic(doc, error, what))
    out.sort(key=lambda d: (d.location.line, d.location.col) if d.location else (0, 0))
    return out
