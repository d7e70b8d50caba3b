"""auditor.yaml: find it, load it against the config schema, and build the Config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from auditor.core.diagnostics import Code, Diagnostic
from auditor.core.model import Config, PushdownScope
from auditor.load import schema
from auditor.load.loader import load_yaml

CONFIG_NAMES = ("auditor.yaml", "auditor.yml")


def find_config(explicit: Path | None) -> tuple[Path | None, list[Diagnostic]]:
    """The config file: --config when given (it must exist), else auditor.yaml or auditor.yml here."""
    if explicit is not None:
        if not explicit.is_file():
            return None, [Diagnostic(Code.FILE_NOT_READ, f"config file not found: {explicit}")]
        return explicit, []
    for name in CONFIG_NAMES:
        candidate = Path(name)
        if candidate.is_file():
            return candidate, []
    return None, []


def load_config(path: Path | None) -> tuple[Config, list[Diagnostic]]:
    """The Config of a file (defaults without one), with the file's problems."""
    if path is None:
        return Config(), []
    doc, problems = load_yaml(path)
    if doc is None:
        return Config(path=str(path)), problems
    if doc.data is None:
        return Config(path=str(path)), []
    problems = schema.validate_document(doc, "config", "config")
    if problems:
        # Keep the variable defaults that are well formed, so rule files are not buried under
        # "undefined variable" errors caused by an unrelated config mistake.
        declared = doc.data.get("variables") if isinstance(doc.data, dict) else None
        usable = {k: v for k, v in declared.items() if isinstance(v, dict)} if isinstance(declared, dict) else {}
        return Config(path=str(path), variables=usable), problems
    data: dict[str, Any] = doc.data
    rules = data.get("rules", ())
    base = path.parent
    # Keys left out keep Config's defaults (the only place defaults are written).
    plain = ("account_id", "api_base", "per_page", "concurrency", "max_waiver_days", "retention_days",
             "max_retry_wait", "request_deadline", "variables", "api_profile", "engine")
    given: dict[str, Any] = {key: data[key] for key in plain if key in data}
    if "pushdown" in data:
        given["pushdown"] = PushdownScope(data["pushdown"])
    return Config(
        path=str(path),
        rules=tuple(str(base / r) for r in ([rules] if isinstance(rules, str) else rules)),
        waivers=str(base / data["waivers"]) if "waivers" in data else None,
        scim_idp_ids=tuple(data.get("scim_idp_ids", ())),
        **given,
    ), []
