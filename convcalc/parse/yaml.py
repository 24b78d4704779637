"""Read YAML with the safe loader, keeping line numbers, within size limits.

Mappings are loaded as :class:`LineDict` (a ``dict`` that remembers the 1-based line of the
mapping and of each key) so errors can name ``file:line``. Anchors/aliases are allowed, but the
expanded document may not exceed :data:`MAX_NODES` nodes (so an alias bomb is refused at once),
nor the file :data:`MAX_BYTES` bytes, nor nesting :data:`MAX_DEPTH` levels. The limits are
enforced while the document is composed, node by node, before any Python object is built, so a
large file fails after :data:`MAX_NODES` nodes instead of after building its whole tree.

Only plain decimals are numbers, of at most :data:`~convcalc.parse.values.MAX_DIGITS` digits;
dates and times stay strings (a spec has no use for them). Events come from libyaml when PyYAML
has it (about ten times faster than the pure-Python scanner), else from PyYAML's own parser.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import cast

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from convcalc.errors import ConvcalcError, LimitError, Location, SpecError
from convcalc.parse.located import LineDict, LineList, is_dynamic, type_name
from convcalc.parse.values import check_digits

MAX_BYTES = 16 * 1024 * 1024
"""Largest spec file (and standard input), in bytes."""
MAX_NODES = 250_000
"""Most YAML nodes a document may hold, aliases counted every time they are used."""
MAX_DEPTH = 64
"""Deepest nesting of YAML lists and mappings."""

_Base: type
if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _Base(Composer, CParser, SafeConstructor, Resolver):  # type: ignore[no-redef]
        """libyaml's events, PyYAML's composer (so nodes are counted as they are made)."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            Composer.__init__(self)

else:  # pragma: no cover - PyYAML without libyaml
    _Base = yaml.SafeLoader


class _Loader(_Base):  # type: ignore[misc]
    name = "<yaml>"
    nodes = 0
    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        """Count every node (and the nesting) before it is composed."""
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise LimitError(
                f"the YAML has more than {MAX_NODES:,} nodes.",
                where=self._here(),
                hint="Use templates and 'repeat' instead of writing every layer out.",
            )
        if self.depth >= MAX_DEPTH:
            raise LimitError(f"the YAML nests deeper than {MAX_DEPTH} levels.", where=self._here())
        self.depth += 1
        try:
            return cast(yaml.Node, super().compose_node(parent, index))
        finally:
            self.depth -= 1

    def _here(self) -> Location:
        return Location(self.name, self.peek_event().start_mark.line + 1)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """A decimal integer of bounded length (Python refuses more than 4,300 digits anyway)."""
        try:
            check_digits(node.value, "a number")
        except ConvcalcError as err:
            raise err.with_context(where=Location(self.name, node.start_mark.line + 1)) from None
        return int(node.value)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LineDict:
        mapping = LineDict()
        mapping.line = node.start_mark.line + 1
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            at = Location(self.name, key_node.start_mark.line + 1)
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)):
                raise SpecError(
                    f"a mapping key must be a plain value, got {type_name(key)}.",
                    where=at,
                    hint="Write a name such as 'kernel_size:'; quote a key that looks like a list or mapping.",
                )
            text = str(key)
            if text in mapping:
                raise SpecError(f"the key '{text}' appears twice in one mapping.", where=at)
            try:
                mapping[text] = self.construct_object(value_node, deep=deep)
            except LimitError as err:
                if isinstance(value_node, yaml.ScalarNode) and err.message.startswith("'a number'"):
                    err.message = f"'{text}'" + err.message[len("'a number'") :]
                raise
            mapping.lines[text] = key_node.start_mark.line + 1
        mapping.dynamic = any(is_dynamic(value) for value in mapping.values())
        return mapping


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    return loader.construct_mapping(node, deep=True)


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    items = LineList()
    items.line = node.start_mark.line + 1
    items.item_lines = [child.start_mark.line + 1 for child in node.value]
    items.extend(loader.construct_object(child, deep=True) for child in node.value)
    items.dynamic = any(is_dynamic(item) for item in items)
    return items


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)

# YAML 1.1 reads 0x3 as hexadecimal, 0:1 as sexagesimal (1) and 1_000 as 1000: all of them are
# convcalc size notations (per-axis "0x3", pad pairs "0:1"). Only plain decimals are numbers here.
# Dates (2001-12-14) and times are strings too: no field takes one, and a message should quote the text.
_NUMERIC = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")
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
        raw = getattr(sys.stdin, "buffer", None)  # bytes: at most the limit + 1 byte, whatever the encoding
        data = raw.read(MAX_BYTES + 1) if raw is not None else sys.stdin.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise LimitError(f"<stdin> is larger than {MAX_BYTES:,} bytes.")
        try:
            text = data.decode("utf-8") if isinstance(data, bytes) else data
        except UnicodeDecodeError as err:
            raise SpecError(f"cannot read <stdin>: {err}.", hint="Specs are UTF-8 text.") from None
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
