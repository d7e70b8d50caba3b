"""Choosing rules by id and tag: exact names, a framework prefix before `:`, and shell-style globs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from auditor.core.model import Rule

_GLOB = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    """True when the pattern has a shell wildcard (`*`, `?` or `[...]`)."""
    return any(c in _GLOB for c in pattern)


def tag_matches(tag: str, pattern: str) -> bool:
    """`soc2` matches `soc2` and every `soc2:...` tag; `soc2:CC6.*` is a glob; otherwise tags are equal."""
    if is_glob(pattern):
        return fnmatchcase(tag, pattern)
    return tag == pattern or (":" not in pattern and tag.startswith(pattern + ":"))


def id_matches(rule_id: str, pattern: str) -> bool:
    """An exact rule id or a shell-style glob over ids."""
    return fnmatchcase(rule_id, pattern) if is_glob(pattern) else rule_id == pattern


@dataclass(frozen=True)
class Selection:
    """--rule/--tag choose (none: every rule), then --skip-rule/--skip-tag remove."""

    rule_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    skip_rule_ids: tuple[str, ...] = ()
    skip_tags: tuple[str, ...] = ()

    def chooses(self, rule: Rule) -> bool:
        """True when the rule is selected."""
        wanted = (not self.rule_ids and not self.tags) or _any_id(rule, self.rule_ids) or _any_tag(rule, self.tags)
        return wanted and not _any_id(rule, self.skip_rule_ids) and not _any_tag(rule, self.skip_tags)

    def apply(self, rules: Sequence[Rule]) -> list[Rule]:
        """The selected rules, in their order."""
        return [r for r in rules if self.chooses(r)]

    def unmatched(self, rules: Sequence[Rule]) -> list[tuple[str, str]]:
        """(option, pattern) of every pattern that matches no rule at all."""
        out = [("--rule", p) for p in self.rule_ids if not any(id_matches(r.id, p) for r in rules)]
        out += [("--skip-rule", p) for p in self.skip_rule_ids if not any(id_matches(r.id, p) for r in rules)]
        out += [("--tag", p) for p in self.tags if not any(_any_tag(r, (p,)) for r in rules)]
        out += [("--skip-tag", p) for p in self.skip_tags if not any(_any_tag(r, (p,)) for r in rules)]
        return out


def _any_id(rule: Rule, patterns: Iterable[str]) -> bool:
    return any(id_matches(rule.id, p) for p in patterns)


def _any_tag(rule: Rule, patterns: Iterable[str]) -> bool:
    return any(tag_matches(t, p) for t in rule.tags for p in patterns)
