"""The one validation entry point: config, variables and rule files -> validated Rules or diagnostics."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.core.diagnostics import Code, Diagnostic, Level, SourceLocation, display_path
from auditor.core.model import Config, Rule, Waiver
from auditor.core.timeutil import now_us
from auditor.load import schema
from auditor.load.config import CONFIG_NAMES, find_config, load_config
from auditor.load.loader import Document, load_yaml
from auditor.load.prune import pruned
from auditor.load.rules import RuleChecker
from auditor.load.variables import REFERENCE, Variables, collect, origin_text, substitute, unused
from auditor.load.waivers import load_waivers


@dataclass(frozen=True)
class Inputs:
    """What the user pointed the run at: rule paths, config, variable definitions."""

    paths: tuple[Path, ...] = ()
    config_path: Path | None = None
    var_files: tuple[Path, ...] = ()
    cli_vars: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    waivers_path: Path | None = None  # --waivers: overrides auditor.yaml's waivers:
    now_us: int | None = None  # "now" for the max_waiver_days check (default: the clock)


@dataclass(frozen=True)
class Project:
    """Everything validated: the config, the rules, their digests, and all problems found."""

    config: Config
    rules: tuple[Rule, ...]
    rule_files: tuple[Path, ...]
    variables: Variables
    rules_sha256: str
    config_sha256: str | None
    diagnostics: tuple[Diagnostic, ...]
    waivers: tuple[Waiver, ...] = ()
    waivers_sha256: str | None = None
    warnings: tuple[Diagnostic, ...] = ()  # problems that do not stop a run (e.g. a regex that may backtrack)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.diagnostics


def _sha256_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(display_path(path).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
        digest.update(b"\0")
    return digest.hexdigest()


# Files a policy repo keeps beside its rules that are not rule files.
NOT_RULES = frozenset({*CONFIG_NAMES, "waivers.yaml", "waivers.yml", ".pre-commit-hooks.yaml"})


def _is_rule_file(path: Path, root: Path) -> bool:
    inside = path.relative_to(root).parts
    hidden = any(part.startswith(".") for part in inside[:-1])
    return path.suffix in (".yaml", ".yml") and path.name not in NOT_RULES and not hidden and path.is_file()


def rule_files(paths: list[Path]) -> tuple[list[Path], list[Diagnostic]]:
    """YAML files under the given paths (recursively, sorted, skipping hidden folders and config files)."""
    found: list[Path] = []
    problems: list[Diagnostic] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if _is_rule_file(p, path))
            if not inside:
                problems.append(Diagnostic(Code.FILE_NOT_READ,
                                           f"no rule files (*.yaml, *.yml) in {display_path(path)}"))
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            problems.append(Diagnostic(Code.FILE_NOT_READ, f"rules path not found: {display_path(path)}", None,
                                       "pass rule files or directories, or set rules: in auditor.yaml"))
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return [Path(display_path(p)) for p in unique], problems


def load_project(inputs: Inputs) -> Project:
    """Load and check everything; never raises for bad input, problems come back as diagnostics."""
    problems: list[Diagnostic] = []
    config_path, found = find_config(inputs.config_path)
    problems.extend(found)
    config, found = load_config(config_path)
    problems.extend(found)
    variables, found = collect(config.variables, list(inputs.var_files), inputs.env, list(inputs.cli_vars))
    problems.extend(found)
    paths = list(inputs.paths) or [Path(p) for p in config.rules] or [Path("rules")]
    files, found = rule_files(paths)
    problems.extend(found)
    rules: list[Rule] = []
    first_seen: dict[str, SourceLocation] = {}
    referenced: set[str] = set()  # variables the rule files use
    for path in files:
        file_rules, ids, found = _load_rule_file(path, variables, config, referenced)
        for rule_id, location in ids:
            if rule_id in first_seen:
                found.append(Diagnostic(Code.DUPLICATE_RULE_ID, f"duplicate rule id '{rule_id}' (first defined at "
                                        f"{first_seen[rule_id]})", location, "rule ids must be unique in a run"))
            else:
                first_seen.setdefault(rule_id, location)
        found.sort(key=lambda d: (d.location.line, d.location.col) if d.location else (0, 0))
        problems.extend(found)
        rules.extend(r for r in file_rules if first_seen.get(r.id) == r.location)
    waivers_path = inputs.waivers_path or (Path(config.waivers) if config.waivers else None)
    waivers: list[Waiver] = []
    if waivers_path is not None:
        waivers, found = load_waivers(waivers_path, set(first_seen), {r.id: r for r in rules}, config,
                                      now_us() if inputs.now_us is None else inputs.now_us,
                                      whole_rule_set=_whole_rule_set(files, config))
        problems.extend(found)
    return Project(
        config=config,
        rules=tuple(rules),
        rule_files=tuple(files),
        variables=variables,
        rules_sha256=_sha256_files(files),
        config_sha256=_sha256_files([config_path]) if config_path else None,
        diagnostics=tuple(d for d in problems if d.level is Level.ERROR),
        warnings=(*(d for d in problems if d.level is not Level.ERROR),
                  *unused(variables, referenced, set(config.variables))),
        waivers=tuple(waivers),
        waivers_sha256=_sha256_files([waivers_path]) if waivers_path else None,
    )


def _whole_rule_set(files: list[Path], config: Config) -> bool:
    """True when the files read include every file of the configured rule set (rules: in auditor.yaml)."""
    configured, _ = rule_files([Path(p) for p in config.rules] or [Path("rules")])
    return set(configured) <= set(files)


def _load_rule_file(
    path: Path, variables: Variables, config: Config, referenced: set[str]
) -> tuple[list[Rule], list[tuple[str, SourceLocation]], list[Diagnostic]]:
    """A file's valid rules, the id and location of every rule in it, and its problems."""
    doc, problems = load_yaml(path)
    if doc is None:
        return [], [], problems
    if doc.data is None:
        return [], [], [Diagnostic(Code.MISSING_KEY, "empty rule file: expected a mapping with a 'rules:' list",
                                   doc.location(""))]
    seen: dict[str, str] = {}
    data, problems = substitute(doc, variables, seen)
    referenced.update(seen.values())
    resolved = Document(doc.path, data, doc.positions, doc.key_positions, doc.text)
    # An unresolved reference is reported once: not again as "expected a list, got a string".
    unresolved_at = {d.location for d in problems}
    problems.extend(d for d in schema.validate_document(resolved, "rules", "rule file")
                    if d.location not in unresolved_at)
    raw_rules = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(raw_rules, list):
        return [], [], problems
    ids = [
        (raw["id"], resolved.location(f"/rules/{i}"))
        for i, raw in enumerate(raw_rules)
        if isinstance(raw, dict) and isinstance(raw.get("id"), str)
    ]
    # Semantic checks need a schema-valid rule with every variable resolved: a rule that is not is checked
    # with its broken parts cut out (their problems are reported already), so all its other problems come
    # in this pass too.
    rule_schema = schema.definition_validator("rules", "rule")
    rules: list[Rule] = []
    for index, raw in enumerate(raw_rules):
        cut = (raw, set()) if rule_schema.is_valid(raw) else pruned(raw, rule_schema)
        if cut is None or _unresolved(cut[0], variables):
            continue
        checked, changed = cut
        checker = RuleChecker(resolved, f"/rules/{index}", config)
        rule = checker.build(checked)
        reported = {d.location for d in problems} | {resolved.location(f"/rules/{index}{p}") for p in changed}
        problems.extend(d for d in checker.problems if d.location not in reported)
        if checked is not raw:
            continue
        problems.extend(checker.warnings)
        if rule is not None:
            rules.append(rule)
    return rules, ids, _with_origins(problems, resolved, seen, variables)


def _with_origins(problems: list[Diagnostic], doc: Document, seen: dict[str, str],
                  variables: Variables) -> list[Diagnostic]:
    """A problem with a value that came from a variable says where the value came from (--var, a file...)."""
    at = {doc.location(pointer): name for pointer, name in seen.items()}
    out = []
    for d in problems:
        name = at.get(d.location) if d.location is not None and d.code != Code.VAR_UNDEFINED else None
        origin = origin_text(variables, name) if name else None
        if origin:
            d = dataclasses.replace(d, hint=f"{d.hint}; {origin}" if d.hint else origin)
        out.append(d)
    return out


def _unresolved(value: Any, variables: Variables) -> bool:
    """True when a reference to an undefined variable is left in the value."""
    if isinstance(value, dict):
        return any(_unresolved(v, variables) for v in value.values())
    if isinstance(value, list):
        return any(_unresolved(v, variables) for v in value)
    return isinstance(value, str) and any(m.group(1) not in variables.values for m in REFERENCE.finditer(value))
