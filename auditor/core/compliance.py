"""The compliance roll-up: rules grouped by framework and control from their `FRAMEWORK:CONTROL` tags.

An auditor asks "how does SOC 2 CC6.1 stand?": each control's status is the worst of its rules' (error,
then fail, then waived, then pass), and a framework lists its controls in tag order. Tags without a `:`
are not compliance tags and are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from auditor.core.status import Status


def split_tag(tag: str) -> tuple[str, str] | None:
    """`soc2:CC6.1` -> ("soc2", "CC6.1"); None for a tag that names no framework and control."""
    framework, sep, control = tag.partition(":")
    return (framework, control) if sep and framework and control else None


def worst(statuses: Iterable[str]) -> str:
    """The worst of some statuses (pass for none)."""
    return max((Status(s) for s in statuses), key=lambda s: s.rank, default=Status.PASS).value


def rollup(results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per framework (sorted), per control (sorted): its status and its rules' ids and statuses."""
    frameworks: dict[str, dict[str, list[dict[str, str]]]] = {}
    for r in results:
        for tag in r.get("tags") or ():
            parts = split_tag(tag)
            if parts is None:
                continue
            rules = frameworks.setdefault(parts[0], {}).setdefault(parts[1], [])
            if all(x["id"] != r["id"] for x in rules):
                rules.append({"id": r["id"], "status": r["status"]})
    out = []
    for framework in sorted(frameworks):
        statuses = {c: worst(x["status"] for x in rules) for c, rules in frameworks[framework].items()}
        controls = [{"control": c, "status": statuses[c], "rules": rules}
                    for c, rules in sorted(frameworks[framework].items())]
        counts = {s.value: sum(1 for v in statuses.values() if v == s.value) for s in Status}
        out.append({"framework": framework, "status": worst(statuses.values()), "controls": controls,
                    "summary": counts})
    return out
