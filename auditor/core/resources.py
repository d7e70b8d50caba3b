"""The one place that knows where schemas, templates and the starter rules live on disk."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # auditor/, not auditor/core/
_CHECKOUT = _PACKAGE.parent


def _locate(installed: str, checkout: str) -> Path:
    """Prefer the copy inside an installed wheel, else the source checkout's top-level folder."""
    wheel_path = _PACKAGE / "_data" / installed
    if wheel_path.is_dir():
        return wheel_path
    return _CHECKOUT / checkout


def schemas_dir() -> Path:
    """Directory holding rules/config/waivers/results JSON Schemas."""
    return _locate("schemas", "schemas")


def templates_dir() -> Path:
    """Directory holding the built-in Jinja report templates."""
    return _locate("templates", "reports/templates")


def starter_rules_dir() -> Path:
    """Directory holding the shipped starter rule pack."""
    return _locate("rules", "rules")


def rules_reference() -> Path:
    """docs/rules.md, the rule-language reference (`auditor init` copies it into a new policy repo)."""
    return _locate("docs", "docs") / "rules.md"


def scaffold_dir() -> Path:
    """Directory holding the files `auditor init` writes (package data inside auditor/)."""
    return _PACKAGE / "scaffold"


def schema_path(name: str) -> Path:
    """Path of one schema file, e.g. ``rules`` -> rules.schema.json."""
    return schemas_dir() / f"{name}.schema.json"
