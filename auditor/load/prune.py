"""A schema-valid copy of an item with its schema problems cut out, so the item's other checks still run.

One pass reports every independent problem: a rule with an unknown key or a wrong-typed value still gets
its group_by, CIDR, bounds and window checks, on what is left once the broken parts are removed (they are
reported already, by the schema). Missing required text keys are filled with a placeholder; an item that
cannot be made valid this way (e.g. no `source`) is left to the schema's messages alone.
"""

from __future__ import annotations

import copy
from typing import Any

from jsonschema import Draft202012Validator

_PLACEHOLDERS = {"id": "unnamed", "title": "untitled", "justification": "-", "owner": "-", "expires": "2000-01-01"}


def pruned(item: Any, validator: Draft202012Validator, rounds: int = 4) -> tuple[dict[str, Any], set[str]] | None:
    """The item without the parts its schema errors point at, and the JSON pointers (relative to the item)
    of the places changed: a check of what is left must not report them again, nor their parents (a ratio
    whose bad `max` was cut has no bounds left). None when the item cannot be made valid."""
    if not isinstance(item, dict):
        return None
    item = copy.deepcopy(item)
    changed: set[str] = set()
    for _ in range(rounds):
        errors = list(validator.iter_errors(item))
        if not errors:
            return item, changed
        for error in errors:
            path = list(error.absolute_path)
            for depth in range(1, len(path) + 1):
                changed.add("/" + "/".join(str(p) for p in path[:depth]))
            if not _cut(item, path, error):
                return None
    return (item, changed) if validator.is_valid(item) else None


def _cut(item: dict[str, Any], path: list[Any], error: Any) -> bool:
    """Remove what one error points at; False when that would leave nothing to check."""
    parent: Any = item
    for step in path[:-1]:
        try:
            parent = parent[step]
        except (KeyError, IndexError, TypeError):
            return True  # already cut by an earlier error
    if error.validator == "required" and not path:
        missing = [k for k in _PLACEHOLDERS if k in str(error.message) and k not in item]
        for key in missing:
            item[key] = _PLACEHOLDERS[key]
        return bool(missing)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        for key in [k for k in error.instance if k not in allowed]:
            del error.instance[key]
        return True
    if not path:
        return False
    if isinstance(parent, list):  # removing one element would shift the pointers of the others
        return _cut(item, path[:-1], error)
    key = path[-1]
    if key in ("source",) and parent is item:
        return False  # nothing of a rule can be checked without its source
    try:
        del parent[key]
    except (KeyError, IndexError, TypeError):
        pass
    return True
