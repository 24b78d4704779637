"""Read YAML with the safe loader, keeping line numbers, within size limits.

Mappings are loaded as :class:`LineDict` (a ``dict`` that remembers the 1-based line of the
mapping and of each key) so errors can name ``file:line``. Anchors/aliases are allowed, but the
expanded document may not exceed :data:`MAX_NODES` nodes (so an alias bomb is refused at once),
nor the file :data:`MAX_BYTES` bytes, nor nesting :data:`MAX_DEPTH` levels.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from convcalc.errors import LimitError, Location, SpecError
from convcalc.parse.located import LineDict, LineList, type_name

MAX_BYTES = 16 * 1024 * 1024
MAX_NODES = 1_000_000
MAX_DEPTH = 64


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LineDict:  # type: ignore[override]
        mapping = LineDict()
        mapping.line = node.start_mark.line + 1
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)):
                raise SpecError(f"a mapping key must be a plain value, got {type_name(key)}.")
            text = str(key)
            if text in mapping:
                raise SpecError(
                    f"the key '{text}' appears twice in one mapping.", where=Location(self.name, key_node.start_mark.line + 1)
                )
            mapping[text] = self.construct_object(value_node, deep=deep)
            mapping.lines[text] = key_node.start_mark.line + 1
        return mapping


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    return loader.construct_mapping(node, deep=True)


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    items = LineList()
    items.line = node.start_mark.line + 1
    items.item_lines = [child.start_mark.line + 1 for child in node.value]
    items.extend(loader.construct_object(child, deep=True) for child in node.value)
    return items


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)

# YAML 1.1 reads 0x3 as hexadecimal, 0:1 as sexagesimal (1) and 1_000 as 1000: all of them are
# convcalc size notations (per-axis "0x3", pad pairs "0:1"). Only plain decimals are numbers here.
_NUMERIC = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _NUMERIC]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"), list("-+.0123456789")
)


def _check_size(root: yaml.Node, source: str) -> None:
    """Count expanded nodes (aliases counted every time they are used) without expanding them."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise LimitError(f"the YAML nests deeper than {MAX_DEPTH} levels.", where=Location(source, node.start_mark.line + 1))
        key = id(node)
        if key in sizes:
            return sizes[key]
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        sizes[key] = total
        if total > MAX_NODES:
            raise LimitError(
                f"the YAML expands to more than {MAX_NODES:,} nodes (an alias bomb?).",
                where=Location(source, node.start_mark.line + 1),
                hint="Use templates/repeat instead of deeply nested aliases.",
            )
        return total

    size(root, 0)


def load_text(text: str, source: str) -> object:
    """Parse YAML text safely; errors name ``source:line``."""
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise LimitError(f"{source} is larger than {MAX_BYTES:,} bytes.")
    try:
        loader = _Loader(text)
        loader.name = source
        try:
            root = loader.get_single_node()
            if root is None:
                raise SpecError(f"{source} is empty.", where=Location(source), hint="Write a YAML mapping.")
            _check_size(root, source)
            return loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = err.problem or err.context or "malformed YAML"
        raise SpecError(
            f"malformed YAML: {problem}.", where=Location(source, line), hint="Check indentation and quoting."
        ) from None
    except yaml.YAMLError as err:
        raise SpecError(f"malformed YAML: {err}.", where=Location(source)) from None
    except RecursionError:
        raise LimitError("the YAML nests too deeply.", where=Location(source)) from None


_STDIN: list[tuple[object, str]] = []
"""The standard-input stream read last and its text (see :func:`read_stdin`)."""


def read_stdin() -> str:
    """The text of standard input, read once per stream: ``-`` may be loaded twice in one command
    (``run`` first looks whether a file is a network, then loads it), and a stream reads only once."""
    if not _STDIN or _STDIN[0][0] is not sys.stdin:
        text = sys.stdin.read(MAX_BYTES + 1)
        if len(text) > MAX_BYTES:
            raise LimitError(f"<stdin> is larger than {MAX_BYTES:,} bytes.")
        _STDIN[:] = [(sys.stdin, text)]
    return _STDIN[0][1]


def load_file(path: str) -> tuple[object, str]:
    """Load ``path`` (``-`` reads stdin); returns the data and the source name for messages."""
    if path == "-":
        return load_text(read_stdin(), "<stdin>"), "<stdin>"
    file = Path(path)
    if not file.is_file():
        raise SpecError(f"the spec file '{path}' does not exist.", hint="Check the path (use '-' to read standard input).")
    if file.stat().st_size > MAX_BYTES:
        raise LimitError(f"{path} is larger than {MAX_BYTES:,} bytes.")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"cannot read '{path}': {err}.") from None
    return load_text(text, path), path
