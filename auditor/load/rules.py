"""Semantic checks of one schema-valid rule (fields, operators, operands, windows, tests) and building the Rule."""

from __future__ import annotations

import re
from typing import Any

import regex

from auditor.core.diagnostics import Code, Diagnostic, Level, display_path
from auditor.core.fields import SOURCES, FieldType, Source
from auditor.core.model import Condition, Config, Correlation, Expectation, Rule, RuleTest, Side, TimeBound
from auditor.core.status import Severity, Status
from auditor.core.timeutil import TimeRangeError, parse_duration, parse_time
from auditor.language import conditions as ops
from auditor.language.conditions import MATCH_TIMEOUT_S, OPERATORS, ValueKind, nested_quantifier
from auditor.load import schema
from auditor.load.loader import Document, pointer_join
from auditor.load.testrecords import record_problems


class RuleChecker:
    """Semantic checks of one schema-valid rule; builds the Rule when there is no problem."""

    def __init__(self, doc: Document, pointer: str, config: Config):
        self.doc = doc
        self.pointer = pointer
        self.config = config
        self.problems: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []  # reported, but the rule is still built
        self.context = ""  # appended to unknown-field messages

    def problem(self, code: Code, message: str, pointer: str, hint: str | None = None, *, key: bool = False) -> None:
        self.problems.append(Diagnostic(code, message, self.doc.location(pointer, key=key), hint))

    def build(self, raw: dict[str, Any]) -> Rule | None:
        p = self.pointer
        correlation = None
        if raw["source"] == "correlation":
            # group_by, expect and for_each measure the matched `then` records: they name then's fields.
            correlation = self.correlate(raw)
            source = SOURCES[raw["correlate"]["then"]["source"]]
            self.context = " (group_by and expect of a correlation rule name fields of correlate.then)"
            conditions: list[Condition] = []
        else:
            if "correlate" in raw:
                self.problem(Code.CORRELATION_SHAPE,
                             f"'correlate' only applies to source: correlation, not {raw['source']}",
                             pointer_join(p, "correlate"), "write source: correlation, or remove correlate",
                             key=True)
            source = SOURCES[raw["source"]]
            conditions = self.conditions(source, raw.get("filter", {}), pointer_join(p, "filter"))
        group_by = raw.get("group_by", ())
        group_by = (group_by,) if isinstance(group_by, str) else tuple(group_by)
        for i, name in enumerate(group_by):
            self.field(source, name, pointer_join(pointer_join(p, "group_by"), i) if len(group_by) > 1
                       or isinstance(raw.get("group_by"), list) else pointer_join(p, "group_by"))
        expectations = self.expectations(source, raw.get("expect", {"count": {"max": 0}}), pointer_join(p, "expect"))
        since, until = self.window(raw)
        for_each = self.for_each(source, raw.get("for_each", {}), group_by, pointer_join(p, "for_each"))
        tests = self.tests(raw["source"], raw.get("tests", []), pointer_join(p, "tests"))
        if source.name == "scim_updates" and correlation is None:
            conditions = self.scope_idp(conditions, for_each)
        if self.problems:
            return None
        return Rule(
            id=raw["id"],
            title=raw["title"],
            source=raw["source"],
            since=since,
            until=until,
            conditions=tuple(conditions),
            expectations=tuple(expectations),
            location=self.doc.location(p),
            severity=Severity(raw.get("severity", Rule.severity)),
            description=raw.get("description"),
            remediation=raw.get("remediation"),
            tags=tuple(raw.get("tags", ())),
            group_by=group_by,
            evidence=raw.get("evidence", Rule.evidence),
            for_each=for_each,
            tests=tests,
            correlation=correlation,
        )

    def correlate(self, raw: dict[str, Any]) -> Correlation | None:
        """`correlate:` of a correlation rule: each side's filter against its own source's fields; join fields
        exist on their sides and have the same type; `within` is a duration."""
        p = self.pointer
        spec = raw["correlate"]
        at = pointer_join(p, "correlate")
        if "filter" in raw:
            self.problem(Code.CORRELATION_SHAPE, "a correlation rule does not use 'filter'", pointer_join(p, "filter"),
                         "put the conditions in correlate.first.filter and correlate.then.filter", key=True)
        sides: dict[str, Side] = {}
        for name in ("first", "then"):
            side_at = pointer_join(at, name)
            source = SOURCES[spec[name]["source"]]
            conditions = self.conditions(source, spec[name].get("filter", {}), pointer_join(side_at, "filter"))
            if source.name == "scim_updates":
                conditions = self.scope_idp(conditions, pointer=side_at)
            sides[name] = Side(source.name, tuple(conditions))
        first, then = SOURCES[sides["first"].source], SOURCES[sides["then"].source]
        join: list[tuple[str, str]] = []
        join_at = pointer_join(at, "join")
        for first_field, then_field in spec["join"].items():
            pair_at = pointer_join(join_at, first_field)
            known = self.field(first, first_field, pair_at, key=True)
            known = self.field(then, then_field, pair_at) and known
            if not known:
                continue
            types = (first.fields[first_field].type, then.fields[then_field].type)
            if FieldType.TIME in types:
                timed = first_field if types[0] == FieldType.TIME else then_field
                self.problem(Code.JOIN_NEVER_MATCHES, f"cannot join on the time field '{timed}'", pair_at,
                             "then always comes after first; bound the delay with within: DURATION",
                             key=True)
            elif types[0] != types[1]:
                self.problem(Code.JOIN_NEVER_MATCHES,
                             f"join {first_field} -> {then_field}: a {types[0]} field never equals a "
                             f"{types[1]} field", pair_at, key=True)
            else:
                join.append((first_field, then_field))
        within = spec.get("within")
        within_us = self.duration(within, pointer_join(at, "within")) if within is not None else None
        if within_us == 0:
            self.problem(Code.ZERO_WITHIN,
                         "within: a zero duration never matches (then must come strictly after first)",
                         pointer_join(at, "within"), "e.g. within: 30d")
        return Correlation(sides["first"], sides["then"], tuple(join), within_us, within)

    def field(self, source: Source, name: str, pointer: str, *, key: bool = False) -> bool:
        if name in source.fields:
            return True
        other = [s.name for s in SOURCES.values() if name in s.fields]
        hint = f"'{name}' is a field of {other[0]}" if other else schema.did_you_mean(name, source.fields)
        self.problem(Code.UNKNOWN_FIELD, f"unknown field '{name}' for source {source.name}{self.context}", pointer,
                     hint or f"fields: {', '.join(source.fields)}", key=key)
        return False

    def conditions(self, source: Source, mapping: dict[str, Any], pointer: str) -> list[Condition]:
        out: list[Condition] = []
        for name, spec in mapping.items():
            at = pointer_join(pointer, name)
            if not self.field(source, name, at, key=True):
                continue
            if isinstance(spec, dict):
                pairs = [(op, operand, pointer_join(at, op)) for op, operand in spec.items()]
            elif isinstance(spec, list):
                pairs = [("in", spec, at)]
            else:
                pairs = [("eq", spec, at)]
            for op, operand, op_at in pairs:
                if self.operand(source, name, op, operand, op_at):
                    out.append(Condition(name, op, operand))
        return out

    def operand(self, source: Source, name: str, op: str, operand: Any, at: str) -> bool:
        fld = source.fields[name]
        operator = OPERATORS[op]
        if fld.type not in operator.types:
            fits = [f.name for f in source.fields.values() if f.type in operator.types]
            self.problem(Code.OPERATOR_NOT_FOR_FIELD,
                         f"operator '{op}' does not apply to {fld.type} field '{name}'", at,
                         f"'{op}' applies to: {', '.join(fits)}" if fits else None, key=True)
            return False
        kind = operator.value
        if kind in (ValueKind.SCALAR, ValueKind.SCALARS):
            items = operand if kind == ValueKind.SCALARS else [operand]
            for i, item in enumerate(items):
                item_at = pointer_join(at, i) if kind == ValueKind.SCALARS else at
                if fld.type == FieldType.BOOL and not isinstance(item, bool):
                    self.problem(Code.OPERAND_TYPE,
                                 f"'{name}' is a boolean: compare it with true or false, not {item!r}",
                                 item_at)
                    return False
                if fld.type != FieldType.BOOL and not isinstance(item, str):
                    self.problem(Code.OPERAND_TYPE, f"'{name}' holds text: {item!r} is not a string", item_at,
                                 f"quote it: \"{item}\"")
                    return False
                if name == "country" and item != item.upper():
                    self.problem(Code.COUNTRY_CASE, f"'country' is never {item!r}: country codes (ISO 3166 alpha-2) "
                                 "are read upper case from every source", item_at, f"write '{item.upper()}'")
                    return False
                if fld.enum and item not in fld.enum:
                    hint = f"write '{item.upper()}'" if item.upper() in fld.enum else None
                    self.problem(Code.VALUE_NEVER_MATCHES, f"'{name}' is never {item!r}: the API only has "
                                 f"{', '.join(fld.enum)} (values are case-sensitive)", item_at, hint)
                    return False
        elif kind == ValueKind.REGEX:
            try:
                re.compile(operand)
                regex.compile(operand)  # evaluation matches with `regex` (its matches can time out)
            except (re.error, regex.error) as exc:
                self.problem(Code.INVALID_REGEX, f"invalid regular expression {operand!r}: {exc}", at)
                return False
            if nested_quantifier(operand):
                self.warnings.append(Diagnostic(
                    Code.NESTED_QUANTIFIER, f"regular expression {operand!r} repeats a group that itself repeats: "
                    f"it can backtrack exponentially, and a match that runs out of time ({MATCH_TIMEOUT_S} s) "
                    "makes the rule error",
                    self.doc.location(at), "write it without nesting, e.g. ^[a-z0-9.]+@example\\.com$",
                    level=Level.WARNING))
        elif kind == ValueKind.NETWORKS:
            items = [(operand, at)] if isinstance(operand, str) else [
                (item, pointer_join(at, i)) for i, item in enumerate(operand)]
            for item, item_at in items:  # point at the bad network itself, not at the list
                try:
                    ops.parse_networks(item)
                except ValueError as exc:
                    self.problem(Code.INVALID_NETWORK,
                                 f"invalid network: {exc}", item_at, "write a CIDR such as 203.0.113.0/24")
                    return False
        return True

    def expectations(self, source: Source, mapping: dict[str, Any], pointer: str) -> list[Expectation]:
        out: list[Expectation] = []
        for kind, spec in mapping.items():
            at = pointer_join(pointer, kind)
            lo, hi = spec.get("min"), spec.get("max")
            if lo is None and hi is None:
                self.problem(Code.INVALID_EXPECTATION, f"expectation '{kind}' needs min or max", at)
                continue
            if lo is not None and hi is not None and lo > hi:
                self.problem(Code.INVALID_EXPECTATION, f"expectation '{kind}' has min {lo} greater than max {hi}", at)
                continue
            if kind == "distinct":
                if not self.field(source, spec["field"], pointer_join(at, "field")):
                    continue
                out.append(Expectation("distinct", lo, hi, field=spec["field"]))
            elif kind == "ratio":
                where = self.conditions(source, spec["where"], pointer_join(at, "where"))
                if not where and not spec["where"]:
                    self.problem(Code.INVALID_EXPECTATION, "ratio needs at least one condition in 'where'", at)
                    continue
                out.append(Expectation("ratio", lo, hi, where=tuple(where)))
            else:
                out.append(Expectation("count", lo, hi))
        return out

    def window(self, raw: dict[str, Any]) -> tuple[TimeBound, TimeBound]:
        p = self.pointer
        if "window" in raw and ("since" in raw or "until" in raw):
            self.problem(Code.EMPTY_WINDOW,
                         "give either 'window' or 'since'/'until', not both", pointer_join(p, "window"),
                         key=True)
        if "since" not in raw and "until" not in raw:
            duration = self.duration(raw.get("window", Rule.window), pointer_join(p, "window"))
            return TimeBound(before_us=duration or 0), TimeBound(before_us=0)
        since = self.timepoint(raw.get("since"), pointer_join(p, "since"))
        until = self.timepoint(raw.get("until"), pointer_join(p, "until")) if "until" in raw else TimeBound(
            before_us=0)
        if "since" not in raw and until is not None:
            # `until` alone: the default window ending there, [until - 24h, until).
            default = parse_duration(Rule.window) or 0  # a valid duration: never None
            if until.absolute_us is not None:
                return TimeBound(absolute_us=until.absolute_us - default), until
            return TimeBound(before_us=(until.before_us or 0) + default), until
        if since is None or until is None:
            return TimeBound(before_us=0), TimeBound(before_us=0)  # already reported; no order to check
        # Both absolute or both relative: their order is known now; mixed pairs are checked by the compiler.
        if since.absolute_us is not None and until.absolute_us is not None and since.absolute_us >= until.absolute_us:
            self.problem(Code.EMPTY_WINDOW, "'since' must be earlier than 'until'", pointer_join(p, "since"))
        if since.before_us is not None and until.before_us is not None and since.before_us <= until.before_us:
            self.problem(Code.EMPTY_WINDOW, "'since' must be earlier than 'until'", pointer_join(p, "since"))
        return since, until

    def duration(self, text: str, pointer: str) -> int | None:
        """A schema-checked duration in microseconds; None (and a problem) when it is too long."""
        try:
            return parse_duration(text)
        except TimeRangeError as exc:
            self.problem(Code.TIME_RANGE, str(exc), pointer)
            return None

    def timepoint(self, text: Any, pointer: str) -> TimeBound | None:
        if text is None:
            return TimeBound(before_us=0)
        try:
            duration = parse_duration(text)
            if duration is not None:
                return TimeBound(before_us=duration)
            return TimeBound(absolute_us=parse_time(text))
        except TimeRangeError as exc:
            self.problem(Code.TIME_RANGE, str(exc), pointer)
            return None
        except ValueError:
            self.problem(Code.INVALID_TIME, f"{text!r} is neither an RFC 3339 timestamp nor a duration", pointer,
                         "e.g. 2026-11-01T00:00:00Z or 7d")
            return None

    def scope_idp(self, conditions: list[Condition], for_each: tuple[tuple[str, tuple[Any, ...]], ...] = (),
                  pointer: str | None = None) -> list[Condition]:
        """A SCIM rule reads the IdPs its filter names, else those of `scim_idp_ids` (and a `for_each` on
        idp_id): the API requires idp_id, so that scope is made an explicit condition, checked locally too,
        and files and the API give the same answer."""
        if any(c.field == "idp_id" and c.op in ("eq", "in") for c in conditions):
            return conditions
        ids = sorted(set(self.config.scim_idp_ids)
                     | {str(v) for name, values in for_each if name == "idp_id" for v in values})
        if not ids:
            self.problem(Code.SCIM_NEEDS_IDP,
                         "scim_updates rules need an idp_id: the API requires it", pointer or self.pointer,
                         "add filter: {idp_id: <IdP id>} or scim_idp_ids: [...] in auditor.yaml")
            return conditions
        return [*conditions, Condition("idp_id", "in", ids)]

    def for_each(self, source: Source, mapping: dict[str, Any], group_by: tuple[str, ...],
                 pointer: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        """`for_each: {FIELD: [values]}`: each field must be a group_by field; values fit the field."""
        out = []
        for name, values in mapping.items():
            at = pointer_join(pointer, name)
            if not self.field(source, name, at, key=True):
                continue
            if name not in group_by:
                self.problem(Code.FOR_EACH_FIELD, f"for_each field '{name}' is not a group_by field", at,
                             f"add it to group_by (now: {', '.join(group_by) or 'none'})", key=True)
                continue
            if not isinstance(values, list) or not values:
                self.problem(Code.FOR_EACH_VALUES, f"for_each '{name}' needs a non-empty list of values", at)
                continue
            if all(self.operand(source, name, "in", [v], pointer_join(at, i)) for i, v in enumerate(values)):
                out.append((name, tuple(dict.fromkeys(values))))
        return tuple(out)

    def tests(self, source: str, cases: list[dict[str, Any]], pointer: str) -> tuple[RuleTest, ...]:
        """`tests:` cases: records inline (a list, or per source) or from a file beside the rule file."""
        out = []
        for i, case in enumerate(cases):
            at = pointer_join(pointer, i)
            records, records_file = case.get("records"), case.get("records_file")
            if records is not None and records_file is not None:
                self.problem(Code.TEST_RECORDS,
                             f"test '{case['name']}' gives both 'records' and 'records_file': keep one",
                             pointer_join(at, "records_file"), key=True)
                continue
            if records is None and records_file is None:
                self.problem(Code.TEST_RECORDS, f"test '{case['name']}' needs 'records' or 'records_file'", at,
                             "records: [] is a case without records")
                continue
            by_source: dict[str, tuple[dict[str, Any], ...]] | None = None
            path = None
            if records_file is not None:
                path = self.doc.path.parent / records_file
                if not path.exists():
                    self.problem(Code.TEST_RECORDS, f"records_file not found: {display_path(path)}",
                                 pointer_join(at, "records_file"), "the path is relative to the rule file")
                    continue
            elif isinstance(records, list):
                if source not in SOURCES:
                    self.problem(Code.TEST_RECORDS,
                                 f"a {source} rule's test records must be given per source", pointer_join(
                        at, "records"), f"records: {{{', '.join(f'{s}: [...]' for s in SOURCES)}}}")
                    continue
                by_source = {source: tuple(records)}
            elif records is not None:
                by_source = {name: tuple(items) for name, items in records.items()}
                other = sorted(set(by_source) - {source}) if source in SOURCES else []
                if other:
                    self.problem(Code.TEST_RECORDS, f"this rule reads only {source} records, not {', '.join(other)}",
                                 pointer_join(pointer_join(at, "records"), other[0]), key=True)
                    continue
            if by_source is not None and not self.test_records(by_source, records, pointer_join(at, "records")):
                continue
            at_us = None
            if "at" in case:
                try:
                    at_us = parse_time(case["at"])
                except TimeRangeError as exc:
                    self.problem(Code.TIME_RANGE, f"test 'at': {exc}", pointer_join(at, "at"))
                    continue
                except ValueError:
                    self.problem(Code.TEST_AT, f"test 'at' {case['at']!r} is not an RFC 3339 timestamp",
                                 pointer_join(at, "at"), "e.g. 2026-11-15T00:00:00Z")
                    continue
            out.append(RuleTest(case["name"], Status(case["expect"]), self.doc.location(at), by_source,
                                str(path) if path is not None else None, at_us))
        return tuple(out)

    def test_records(self, by_source: dict[str, tuple[dict[str, Any], ...]], raw: Any, pointer: str) -> bool:
        """Inline records have a readable time and only their source's fields, with values of their types."""
        ok = True
        for code, message, at, hint, key in record_problems(by_source, isinstance(raw, dict), pointer):
            self.problem(code, message, at, hint, key=key)
            ok = False
        return ok
