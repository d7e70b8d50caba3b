"""Waivers: load and check waivers.yaml (applying them to a run is auditor.decide.waivers).

A failing rule becomes `waived` only when every violating group is covered by a waiver of that rule that
has not expired at the run's reference time T (a waiver applies while T < expires; a date means 00:00 UTC
that day, so a waiver expiring at exactly T no longer applies). Each violating group is credited to the
first matching waiver in file order. Expired waivers and waivers that matched nothing are warnings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from auditor.core.diagnostics import Code, Diagnostic
from auditor.core.model import Config, Rule, Waiver
from auditor.core.timeutil import US, parse_time
from auditor.load import schema
from auditor.load.loader import load_yaml, pointer_join
from auditor.load.prune import pruned

DAY_US = 86400 * US
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# Waiver states in results: applied (its rule is waived), partial (it covered groups, others still fail),
# expired, unused (matched nothing: a stale exception), not_run (its rule was not selected or not decided).
STATES = ("applied", "partial", "expired", "unused", "not_run")


def parse_expiry(text: str) -> int:
    """`2027-01-31` (00:00 UTC that day) or an RFC 3339 timestamp -> epoch microseconds; ValueError else."""
    if isinstance(text, str) and _DATE.match(text):
        return parse_time(text + "T00:00:00Z")
    return parse_time(text)


def load_waivers(path: Path, rule_ids: set[str], rules: Mapping[str, Rule], config: Config,
                 now_us: int, *, whole_rule_set: bool = True) -> tuple[list[Waiver], list[Diagnostic]]:
    """Validated waivers of one file, and its problems with file:line:col.

    `rule_ids` are all ids seen in the rule files (a waiver for a rule with its own problems is not
    reported again); `rules` the valid ones, whose group_by `match` keys are checked against. A waiver
    valid for more than `max_waiver_days` counted from `now_us` (the clock at validation) is an error.
    Without the `whole_rule_set` loaded (some rule files named on the command line), a waiver of a rule
    not loaded is skipped: its rule may be in a file not read, as for rules not chosen with --rule.
    """
    doc, problems = load_yaml(path)
    if doc is None:
        if problems and problems[0].code == Code.FILE_NOT_READ and not path.exists():
            return [], [Diagnostic(Code.FILE_NOT_READ, f"waivers file not found: {path}", None,
                                   "fix waivers: in auditor.yaml or --waivers")]
        return [], problems
    if doc.data is None:
        return [], []
    problems = schema.validate_document(doc, "waivers", "waiver file")
    raw = doc.data.get("waivers") if isinstance(doc.data, dict) else None
    if not isinstance(raw, list):
        return [], problems
    item = schema.definition_validator("waivers", "waiver")
    out: list[Waiver] = []
    for i, given in enumerate(raw):
        # A waiver with schema problems (reported already) is still checked for the rest, with them cut out.
        cut = (given, set()) if item.is_valid(given) else pruned(given, item)
        if cut is None:
            continue
        entry = cut[0]
        at = f"/waivers/{i}"

        def problem(code: Code, message: str, pointer: str, hint: str | None = None, *, key: bool = False) -> None:
            problems.append(Diagnostic(code, message, doc.location(pointer, key=key), hint))

        rule_id = entry["rule"]
        if rule_id not in rule_ids and not whole_rule_set:
            continue
        bad = entry is not given  # every independent problem is reported, then the waiver is left out
        if rule_id not in rule_ids:
            problem(Code.WAIVER_UNKNOWN_RULE, f"waiver names unknown rule '{rule_id}'", pointer_join(at, "rule"),
                    schema.did_you_mean(rule_id, rule_ids))
            bad = True
        try:
            expires_us = parse_expiry(entry["expires"])
        except ValueError:
            problem(Code.WAIVER_EXPIRES, f"expires {entry['expires']!r} is neither a date nor an RFC 3339 timestamp",
                    pointer_join(at, "expires"), "e.g. 2027-01-31 (00:00 UTC that day)")
            bad, expires_us = True, now_us
        days = (expires_us - now_us) / DAY_US
        if days > config.max_waiver_days:
            problem(Code.WAIVER_TOO_LONG,
                    f"waiver is valid for {days:.0f} days from now (until {entry['expires']}), more than "
                    f"max_waiver_days ({config.max_waiver_days})", pointer_join(at, "expires"),
                    "pick an earlier expiry and renew the waiver when it is reviewed")
            bad = True
        rule = rules.get(rule_id)
        match = entry.get("match", {})
        if rule is not None:
            for name in match:
                if name not in rule.group_by:
                    hint = (f"group_by fields of '{rule_id}': {', '.join(rule.group_by)}" if rule.group_by else
                            f"'{rule_id}' has no group_by: leave out match to waive the whole rule")
                    problem(Code.WAIVER_MATCH, f"match field '{name}' is not a group_by field of rule '{rule_id}'",
                            pointer_join(pointer_join(at, "match"), name), hint, key=True)
                    bad = True
                elif name == "country" and isinstance(match[name], str) and match[name] != match[name].upper():
                    problem(Code.COUNTRY_CASE, f"'country' is never {match[name]!r}: country codes (ISO 3166 "
                            "alpha-2) are read upper case from every source",
                            pointer_join(pointer_join(at, "match"), name), f"write '{match[name].upper()}'")
                    bad = True
        if bad:
            continue
        out.append(Waiver(
            rule=rule_id, justification=entry["justification"], owner=entry["owner"], expires=entry["expires"],
            expires_us=expires_us, location=doc.location(at), match=tuple(match.items()),
            ticket=entry.get("ticket"),
        ))
    problems.sort(key=lambda d: (d.location.line, d.location.col) if d.location else (0, 0))
    return out, problems
