"""`${var.NAME}` references: definitions from config, var files, environment and --var, and substitution."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.core.diagnostics import Code, Diagnostic, Level
from auditor.load.loader import Document, load_yaml, load_yaml_text, pointer_join

REFERENCE = re.compile(r"\$\{var\.([A-Za-z_][A-Za-z0-9_]*)\}")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_PREFIX = "AUDITOR_VAR_"


@dataclass(frozen=True)
class Variables:
    """Resolved variable values and where each came from (for messages, never for secrets)."""

    values: dict[str, Any]
    origins: dict[str, str]
    # Environment values by upper-cased name, for `${var.name}` defined only as AUDITOR_VAR_NAME.
    env_upper: dict[str, Any] = field(default_factory=dict)

    def lookup(self, name: str) -> tuple[bool, Any]:
        """(found, value) for a reference, falling back to an upper-cased environment name."""
        if name in self.values:
            return True, self.values[name]
        if name.upper() in self.env_upper:
            return True, self.env_upper[name.upper()]
        return False, None


def collect(
    config_vars: Mapping[str, Any],
    var_files: list[Path],
    env: Mapping[str, str],
    cli_vars: list[str],
) -> tuple[Variables, list[Diagnostic]]:
    """Merge the four definition sources, later winning: config, var files, env, --var."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    problems: list[Diagnostic] = []
    for name, spec in config_vars.items():
        if isinstance(spec, dict) and "default" in spec:
            values[name], origins[name] = spec["default"], "auditor.yaml"
    for path in var_files:
        doc, diags = load_yaml(path)
        problems.extend(diags)
        if doc is None:
            continue
        if not isinstance(doc.data, dict):
            problems.append(Diagnostic(Code.VAR_FILE_INVALID,
                                       "a var file must be a mapping of NAME: value", doc.location("")))
            continue
        for name, value in doc.data.items():
            if not NAME.match(name):
                loc = doc.location(pointer_join("", name), key=True)
                problems.append(Diagnostic(Code.VAR_FILE_INVALID, f"invalid variable name '{name}'", loc,
                                           "use letters, digits and '_'"))
                continue
            values[name], origins[name] = value, doc.display
    known = set(values) | set(config_vars)
    env_upper: dict[str, Any] = {}
    for key, raw in sorted(env.items()):
        if not key.startswith(ENV_PREFIX) or len(key) == len(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX):]
        # Environment names are often upper-cased; map them back to a declared name when unambiguous.
        matches = [k for k in known if k.upper() == name.upper()]
        if name not in known and len(matches) == 1:
            name = matches[0]
        parsed, problem = _parse_value(raw, f"environment variable {key}")
        if problem:
            problems.append(problem)
            continue
        values[name], origins[name] = parsed, f"${key}"
        env_upper[name.upper()] = parsed
    for item in cli_vars:
        name, sep, raw = item.partition("=")
        if not sep or not NAME.match(name):
            problems.append(Diagnostic(Code.VAR_OPTION_INVALID, f"--var {item!r} is not NAME=VALUE", None,
                                       "e.g. --var max_denied=5 or --var 'countries=[US, GB]'"))
            continue
        parsed, problem = _parse_value(raw, f"--var {name}")
        if problem:
            problems.append(problem)
            continue
        values[name], origins[name] = parsed, "--var"
    return Variables(values, origins, env_upper), problems


def origin_text(variables: Variables, name: str) -> str | None:
    """Where a variable's value came from, as a hint names it: `--var NAME=VALUE`, a var file, the
    environment or the default in auditor.yaml."""
    origin = variables.origins.get(name)
    if origin is None:
        return None
    value = _as_text(variables.values.get(name))
    if origin == "--var":
        return f"the value comes from --var {name}={value}"
    if origin == "auditor.yaml":
        return f"the value is {name}'s default in auditor.yaml"
    if origin.startswith("$"):
        return f"the value comes from the environment ({origin[1:]}={value})"
    return f"the value comes from --var-file {origin}"


def unused(variables: Variables, referenced: set[str], declared: set[str]) -> list[Diagnostic]:
    """Warnings for --var and --var-file names that no rule references and auditor.yaml does not declare."""
    from auditor.load.schema import did_you_mean

    out = []
    for name, origin in sorted(variables.origins.items()):
        if origin == "auditor.yaml" or origin.startswith("$") or name in referenced or name in declared:
            continue
        where = "--var" if origin == "--var" else f"--var-file {origin}"
        hint = did_you_mean(name, referenced | declared)
        out.append(Diagnostic(Code.VAR_UNUSED, f"{where}: no rule uses variable '{name}' and auditor.yaml does "
                              "not declare it", None, hint, level=Level.WARNING))
    return out


def _parse_value(raw: str, what: str) -> tuple[Any, Diagnostic | None]:
    # The rule files' loader, with its limits on nodes (alias bombs) and depth, and timestamps kept as text.
    if not raw.strip():
        return "", None
    doc, problems = load_yaml_text(raw, Path(what))
    if doc is None:
        reason = problems[0].message.removeprefix("invalid YAML: ") if problems else "invalid YAML"
        return None, Diagnostic(Code.VAR_OPTION_INVALID, f"{what}: value is not valid YAML ({reason})", None,
                                "quote it, e.g. 'value'")
    return doc.data, None


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def substitute(doc: Document, variables: Variables,
               seen: dict[str, str] | None = None) -> tuple[Any, list[Diagnostic]]:
    """A copy of the document's data with every `${var.NAME}` in a value replaced; `seen` gets the JSON
    pointer of each value holding a reference and the variable's name."""
    problems: list[Diagnostic] = []
    seen = {} if seen is None else seen

    def undefined(name: str, pointer: str) -> Diagnostic:
        return Diagnostic(Code.VAR_UNDEFINED, f"undefined variable '{name}'", doc.location(pointer),
                          f"define it under variables: in auditor.yaml, in a --var-file, "
                          f"as {ENV_PREFIX}{name} or with --var {name}=...")

    def walk(value: Any, pointer: str) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, pointer_join(pointer, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, pointer_join(pointer, i)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        for m in REFERENCE.finditer(value):
            seen[pointer] = m.group(1)
        whole = REFERENCE.fullmatch(value)
        if whole:
            name = whole.group(1)
            found, resolved = variables.lookup(name)
            if not found:
                problems.append(undefined(name, pointer))
                return value
            return resolved

        def replace(m: re.Match[str]) -> str:
            found, resolved = variables.lookup(m.group(1))
            if not found:
                problems.append(undefined(m.group(1), pointer))
                return m.group(0)
            return _as_text(resolved)

        return REFERENCE.sub(replace, value)

    return walk(doc.data, ""), problems

