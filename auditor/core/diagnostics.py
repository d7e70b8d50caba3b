"""Problems found in user input, each with a location; printed one per line, flake8-style."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from auditor.core.visible import visible


class Code(StrEnum):
    """The stable diagnostic codes, referenced by name; MEANING says what each is about (docs/diagnostics.md).

    E1xx: reading files and variables; E2xx: the schema; E3xx: rules; E4xx: waivers; W: warnings (still valid).
    """

    FILE_NOT_READ = "E100"
    YAML_INVALID = "E101"
    DUPLICATE_KEY = "E102"
    VAR_FILE_INVALID = "E110"
    VAR_OPTION_INVALID = "E111"
    VAR_UNDEFINED = "E112"
    VAR_UNUSED = "W113"
    SCHEMA = "E200"
    UNKNOWN_KEY = "E201"
    MISSING_KEY = "E202"
    NOT_ONE_OF = "E203"
    WRONG_TYPE = "E204"
    WRONG_FORMAT = "E205"
    EMPTY = "E206"
    DUPLICATE_RULE_ID = "E301"
    UNKNOWN_FIELD = "E302"
    OPERATOR_NOT_FOR_FIELD = "E303"
    OPERAND_TYPE = "E304"
    VALUE_NEVER_MATCHES = "E305"
    INVALID_REGEX = "E306"
    INVALID_NETWORK = "E307"
    INVALID_EXPECTATION = "E308"
    EMPTY_WINDOW = "E309"
    INVALID_TIME = "E310"
    SCIM_NEEDS_IDP = "E311"
    TIME_RANGE = "E312"
    COUNTRY_CASE = "E313"
    FOR_EACH_FIELD = "E320"
    FOR_EACH_VALUES = "E321"
    TEST_RECORDS = "E322"
    TEST_AT = "E323"
    TEST_RECORDS_UNREADABLE = "E324"
    TEST_RECORD_FIELD = "E325"
    NESTED_QUANTIFIER = "W306"
    CORRELATION_SHAPE = "E330"
    JOIN_NEVER_MATCHES = "E331"
    ZERO_WITHIN = "E332"
    WAIVER_UNKNOWN_RULE = "E400"
    WAIVER_EXPIRES = "E401"
    WAIVER_TOO_LONG = "E402"
    WAIVER_MATCH = "E403"


MEANING: dict[Code, str] = {
    Code.FILE_NOT_READ: "a file or path was not found or cannot be read (config, rules, waivers)",
    Code.YAML_INVALID: "a file is not valid YAML",
    Code.DUPLICATE_KEY: "a YAML mapping repeats a key",
    Code.VAR_FILE_INVALID: "a var file is not a mapping of NAME: value, or a variable name is invalid",
    Code.VAR_OPTION_INVALID: "a --var is not NAME=VALUE, or its value is not valid YAML",
    Code.VAR_UNDEFINED: "${var.NAME} names a variable defined nowhere",
    Code.VAR_UNUSED: "warning: a --var or --var-file variable that no rule uses and auditor.yaml does not declare",
    Code.SCHEMA: "a value breaks the file's JSON Schema (the cases below are the common ones)",
    Code.UNKNOWN_KEY: "an unknown key or operator",
    Code.MISSING_KEY: "a required key is missing (or a rule file is empty)",
    Code.NOT_ONE_OF: "a value is not one of the allowed ones",
    Code.WRONG_TYPE: "a value has the wrong type (e.g. a list where a mapping belongs)",
    Code.WRONG_FORMAT: "a text value has the wrong form (ids, durations, field names)",
    Code.EMPTY: "a mapping that must not be empty is empty",
    Code.DUPLICATE_RULE_ID: "two rules share an id",
    Code.UNKNOWN_FIELD: "a field the rule's source does not have",
    Code.OPERATOR_NOT_FOR_FIELD: "an operator that does not apply to the field's type",
    Code.OPERAND_TYPE: "an operand of the wrong type for the field (e.g. a string for a boolean)",
    Code.VALUE_NEVER_MATCHES: "a value the API never returns for that field (a closed set of values)",
    Code.COUNTRY_CASE: "a country code not in upper case: codes are read upper case from every source, so it "
                       "would never match",
    Code.INVALID_REGEX: "an invalid regular expression",
    Code.INVALID_NETWORK: "an invalid CIDR network",
    Code.INVALID_EXPECTATION: "an expectation without bounds, with min above max, or a ratio without where",
    Code.EMPTY_WINDOW: "a window that is empty or given twice (window and since/until)",
    Code.INVALID_TIME: "since/until is neither an RFC 3339 timestamp nor a duration",
    Code.SCIM_NEEDS_IDP: "a scim_updates rule without an idp_id (the API requires one)",
    Code.TIME_RANGE: "a time outside 1970..8999 or a duration over 36500d (window, since, until, within, at)",
    Code.FOR_EACH_FIELD: "a for_each field that is not a group_by field",
    Code.FOR_EACH_VALUES: "a for_each field without a non-empty list of values",
    Code.TEST_RECORDS: "a rule test's records are missing, given twice, of the wrong source or without times",
    Code.TEST_AT: "a rule test's `at` is not an RFC 3339 timestamp",
    Code.TEST_RECORDS_UNREADABLE: "a rule test's records_file cannot be read",
    Code.TEST_RECORD_FIELD: "a rule test's inline record has an unknown field or a value of the wrong type",
    Code.NESTED_QUANTIFIER: "warning: a regex repeats a group that itself repeats, so it can backtrack exponentially",
    Code.CORRELATION_SHAPE: "correlate on a non-correlation rule, or filter on a correlation rule",
    Code.JOIN_NEVER_MATCHES: "a correlation join on a time field or on fields of different types",
    Code.ZERO_WITHIN: "a correlation `within` of zero, which never matches",
    Code.WAIVER_UNKNOWN_RULE: "a waiver names a rule that does not exist",
    Code.WAIVER_EXPIRES: "a waiver's expires is neither a date nor an RFC 3339 timestamp",
    Code.WAIVER_TOO_LONG: "a waiver is valid for longer than max_waiver_days",
    Code.WAIVER_MATCH: "a waiver matches on a field that is not a group_by field of its rule",
}


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


class Level(StrEnum):
    """How a diagnostic weighs: an error makes the input invalid (exit 2); a warning is reported only."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    """One problem: stable code, message, where it is and an optional hint on what to do."""

    code: Code
    message: str
    location: SourceLocation | None = None
    hint: str | None = None
    level: Level = Level.ERROR

    def to_json(self) -> dict[str, object]:
        """The problem as `validate --json` lists it (file, line and column are null when unknown)."""
        where = self.location
        return {"code": self.code, "file": where.path if where else None, "line": where.line or None if where else None,
                "column": (where.col or 1) if where and where.line else None, "message": self.message,
                "hint": self.hint}

    def format(self) -> str:
        """`PATH:LINE:COL: error: MESSAGE (HINT)`, or `error: MESSAGE` when there is no file."""
        # Messages quote rule keys and values: one line, no control characters, never a workflow command.
        text = visible(self.message + (f"; {self.hint}" if self.hint else ""), one_line=True)
        if self.location is None:
            return f"{self.level}: {text}"
        return f"{self.location}: {self.level}: {text}"


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
