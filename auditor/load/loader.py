"""Safe YAML loading that keeps the line and column of every node and rejects duplicate keys."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from auditor.core.diagnostics import Code, Diagnostic, SourceLocation, display_path

# Guards against alias bombs ("billion laughs"): aliases are expanded while building plain data.
MAX_NODES = 1_000_000
MAX_DEPTH = 200
_MERGE = "tag:yaml.org,2002:merge"


@dataclass
class Document:
    """One loaded YAML file: plain data plus positions keyed by JSON pointer."""

    path: Path
    data: Any
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    text: str = ""

    @property
    def display(self) -> str:
        """The path as shown in messages."""
        return display_path(self.path)

    def location(self, pointer: str, *, key: bool = False) -> SourceLocation:
        """Where the node at `pointer` (or its key) is; falls back to the nearest ancestor."""
        table = self.key_positions if key else self.positions
        p = pointer
        while True:
            if p in table:
                line, col = table[p]
                return SourceLocation(self.display, line, col)
            if p in self.positions:
                line, col = self.positions[p]
                return SourceLocation(self.display, line, col)
            if not p:
                return SourceLocation(self.display, 1, 1)
            p = p.rsplit("/", 1)[0]


def pointer_join(base: str, part: str | int) -> str:
    """Append one JSON-pointer segment, escaping `~` and `/`."""
    text = str(part).replace("~", "~0").replace("/", "~1")
    return f"{base}/{text}"


class _LoadError(Exception):
    def __init__(self, message: str, mark: yaml.Mark | None, code: Code = Code.YAML_INVALID):
        super().__init__(message)
        self.message = message
        self.mark = mark
        self.code = code


class _Builder:
    """Turns a composed node graph into plain data while recording positions."""

    def __init__(self) -> None:
        self.positions: dict[str, tuple[int, int]] = {}
        self.key_positions: dict[str, tuple[int, int]] = {}
        self.nodes = 0
        self._constructor = SafeConstructor()

    def build(self, node: yaml.Node, pointer: str, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            raise _LoadError("document too large or too deeply nested (alias expansion?)", node.start_mark)
        self.positions.setdefault(pointer, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, pointer, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, pointer_join(pointer, i), depth + 1) for i, item in enumerate(node.value)]
        if node.tag == "tag:yaml.org,2002:timestamp":
            # Keep dates and times as the text the user wrote; the rule language parses them itself.
            return node.value
        try:
            return self._constructor.construct_object(node, deep=True)
        except ValueError as exc:  # e.g. an integer of more than 4300 digits: reported where it is written
            reason = " ".join(str(exc).split())
            if "integer string conversion" in reason:
                reason = f"an integer of {len(node.value):,} characters is too long (quote it if it is text)"
            raise _LoadError(f"invalid YAML value: {reason}", node.start_mark) from None

    def _mapping(self, node: yaml.MappingNode, pointer: str, depth: int) -> dict[str, Any]:
        explicit = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE)
        self._constructor.flatten_mapping(node)  # `<<: *base` pairs first, then the mapping's own
        merged = len(node.value) - explicit
        pairs = [(self._key(key_node), key_node, value_node) for key_node, value_node in node.value]
        own = {key for key, _, _ in pairs[merged:]}
        last_merged = {key: i for i, (key, _, _) in enumerate(pairs[:merged])}
        out: dict[str, Any] = {}
        for i, (key, key_node, value_node) in enumerate(pairs):
            if i < merged and (key in own or last_merged[key] != i):
                continue  # YAML merge: a key of the mapping itself wins over a merged one, as does a later merge
            if key in out:
                raise _LoadError(f"duplicate key '{key}'", key_node.start_mark, Code.DUPLICATE_KEY)
            child = pointer_join(pointer, key)
            self.key_positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = self.build(value_node, child, depth + 1)
        return out

    def _key(self, key_node: yaml.Node) -> str:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _LoadError("a mapping key must be a plain value", key_node.start_mark)
        key = self._constructor.construct_object(key_node)
        # YAML 1.1 reads `on`, `yes`, `1` as non-strings; keys here are always names.
        return key if isinstance(key, str) else key_node.value


def _fast_loader() -> Any:
    """A loader reading libyaml's events (about 10x faster than PyYAML's pure-Python scanner) composed by
    PyYAML's Python composer: libyaml's own composer recurses in C and crashes the process on deeply nested
    input, where the Python one raises RecursionError. None when PyYAML was built without libyaml."""
    if not getattr(yaml, "__with_libyaml__", False):
        return None
    from yaml.cyaml import CParser  # type: ignore[attr-defined]  # not in the stubs' exports

    class FastLoader(CParser, Composer, Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            Resolver.__init__(self)

        check_node = Composer.check_node
        get_node = Composer.get_node
        get_single_node = Composer.get_single_node
        compose_node = Composer.compose_node

    return FastLoader


_FAST_LOADER = _fast_loader()


def _compose(text: str) -> yaml.Node | None:
    """The document's node graph, parsed by libyaml when available. Errors are left to PyYAML's pure-Python
    loader (`yaml.SafeLoader`), whose messages name line and column as the diagnostics quote them: any
    failure of the fast path composes again the slow way."""
    if _FAST_LOADER is not None:
        try:
            return yaml.compose(text, Loader=_FAST_LOADER)
        except (yaml.YAMLError, RecursionError, ValueError):
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


def load_yaml(path: Path) -> tuple[Document | None, list[Diagnostic]]:
    """Load one YAML file safely; problems come back as diagnostics, never exceptions."""
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [Diagnostic(Code.FILE_NOT_READ, f"file not found: {path}", SourceLocation(shown))]
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return None, [Diagnostic(Code.FILE_NOT_READ, f"cannot read file: {reason}", SourceLocation(shown))]
    return load_yaml_text(text, path)


_UNQUOTED_REFERENCE = re.compile(r"""(?<!["'])\$\{var\.""")


def _flow_reference_hint(text: str, exc: yaml.MarkedYAMLError) -> str | None:
    """In a {...} or [...] mapping `${` is not plain YAML: say to quote the reference."""
    inside_flow = "flow" in (exc.context or "") + (exc.problem or "")
    mark = exc.problem_mark or exc.context_mark
    line = text.splitlines()[mark.line] if mark is not None and mark.line < len(text.splitlines()) else ""
    if inside_flow and _UNQUOTED_REFERENCE.search(line):
        return 'quote the reference inside {...} or [...]: write "${var.NAME}"'
    return None


def load_yaml_text(text: str, path: Path) -> tuple[Document | None, list[Diagnostic]]:
    """Load YAML from text that came from `path`."""
    shown = display_path(path)
    try:
        node = _compose(text)
    except RecursionError:  # PyYAML composes recursively: find the nesting that was too deep, iteratively
        line, col = _too_deep(text)
        return None, [Diagnostic(Code.YAML_INVALID, f"document nested more than {MAX_DEPTH} levels deep",
                                 SourceLocation(shown, line, col))]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        message = f"invalid YAML: {problem}"
        if exc.context and exc.problem:
            context = exc.context
            start = exc.context_mark
            if start is not None and mark is not None and start.line != mark.line:
                context += f" started at line {start.line + 1}"  # e.g. an unclosed bracket: say where it opened
            message = f"invalid YAML: {problem} ({context})"
            if problem.startswith("but "):  # PyYAML splits "expected X, but found Y" across the two parts
                message = f"invalid YAML: {context}, {problem}"
        return None, [Diagnostic(Code.YAML_INVALID, message, SourceLocation(shown, line, col),
                                 _flow_reference_hint(text, exc))]
    except yaml.YAMLError as exc:
        line, col = 1, 1
        if isinstance(exc, yaml.reader.ReaderError):  # a character YAML forbids: point at it
            before = text[: exc.position]
            line, col = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
            reason = f"unacceptable character #x{exc.character:04x}: {exc.reason}" if isinstance(
                exc.character, int) else str(exc.reason)
        else:
            reason = " ".join(str(exc).split())
        return None, [Diagnostic(Code.YAML_INVALID, f"invalid YAML: {reason}", SourceLocation(shown, line, col))]
    if node is None:
        return Document(path, None, {"": (1, 1)}, {}, text), []
    if _expanded_size(node, {}) > MAX_NODES:  # counted over shared nodes first: an alias bomb fails at once
        return None, [Diagnostic(Code.YAML_INVALID, "document too large or too deeply nested (alias expansion?)",
                                 SourceLocation(shown, node.start_mark.line + 1, node.start_mark.column + 1))]
    builder = _Builder()
    try:
        data = builder.build(node, "", 0)
    except _LoadError as exc:
        line, col = (exc.mark.line + 1, exc.mark.column + 1) if exc.mark else (1, 1)
        return None, [Diagnostic(exc.code, exc.message, SourceLocation(shown, line, col))]
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        # A MarkedYAMLError's str() spans several lines (it quotes the source): keep only the problem.
        reason = getattr(exc, "problem", None) or " ".join(str(exc).split())
        return None, [Diagnostic(Code.YAML_INVALID, f"invalid YAML value: {reason}", SourceLocation(shown, line, col))]
    return Document(path, data, builder.positions, builder.key_positions, text), []


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many nodes the document has once every alias is expanded; a node is counted once however often it
    is shared, so this costs one visit per written node. A node inside itself counts as too many."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = MAX_NODES + 1  # while being counted: a recursive alias reaching it again is too large
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            total += _expanded_size(item, sizes)
            if total > MAX_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            total += _expanded_size(key, sizes) + _expanded_size(value, sizes)
            if total > MAX_NODES:
                break
    sizes[id(node)] = total
    return total


def _too_deep(text: str) -> tuple[int, int]:
    """Line and column where nesting first goes deeper than MAX_DEPTH (PyYAML's parser is not recursive)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            mark = event.start_mark
            if depth > MAX_DEPTH and mark is not None:
                return mark.line + 1, mark.column + 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return 1, 1
