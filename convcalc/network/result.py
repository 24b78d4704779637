"""What evaluating a network produces: rows, blocks, totals, expectations, :class:`NetResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from convcalc import rf
from convcalc.engine import StageResult, Tensor
from convcalc.errors import ConvcalcError, Location
from convcalc.network.spec import NetworkSpec
from convcalc.parse.layer import LayerSpec
from convcalc.primitives.base import Shape, Stage, numel
from convcalc.report import EXACT, CostFields, Costs, sum_costs

EVAL, TRAIN = "eval", "train"
"""Evaluation modes: ``eval`` (default) leaves the per-sample work of ``training_only`` items out
of the counts (their params stay: the weights exist in the model); ``train`` counts it."""
MODES = (EVAL, TRAIN)
UNALIGNED = "merged paths are not aligned"
"""How an unaligned-merge note starts (:func:`unaligned_note`)."""


def note_kind(note: str) -> str:
    """What a note says regardless of the layer: an unaligned-merge note without its branches'
    names, strides and centres; any other note is its own kind."""
    if note.startswith(UNALIGNED):
        return f"{UNALIGNED} (the inputs differ in effective stride or centre); the receptive field shown is the largest."
    return note


@dataclass(frozen=True, slots=True)
class LayerRow(CostFields):
    """One evaluated layer (or, folded, one block): per-sample :class:`~convcalc.report.Costs`, the
    receptive field, its status (:data:`convcalc.report.FIELD_STATUSES`) and whether global
    context also reaches it (:mod:`convcalc.rf`)."""

    name: str
    type: str
    input_shapes: tuple[Shape, ...]
    output_shape: Shape
    costs: Costs
    field: rf.Field | None
    rf_status: str
    notes: tuple[str, ...] = ()
    where: Location | None = None
    stages: tuple[StageResult, ...] = ()
    global_context: bool = False
    training_only: bool = False
    """Part of a ``training_only`` item (an auxiliary head): in eval mode its costs hold its
    params only (:data:`EVAL`)."""
    spec: LayerSpec | None = None
    """The resolved layer (every field, defaults included); None for merges and folded blocks."""

    @property
    def activations(self) -> int:
        """Elements of the output per sample."""
        return numel(self.output_shape)

    @property
    def depth(self) -> int:
        return self.name.count(".") + 1


@dataclass(frozen=True)
class BlockInfo:
    """A named group of rows: a template call, sequence, residual, branches or repeat."""

    path: str
    type: str
    where: Location | None


@dataclass(frozen=True)
class Expectation:
    """One checked ``expect`` entry."""

    what: str
    ok: bool
    message: str
    where: Location | None
    layer: str | None = None
    skipped: bool = False
    """Not checked: the spec's number is for its own input or variables (``--in``/``--set`` changed them)."""


@dataclass(frozen=True)
class Totals(CostFields):
    """Network totals per sample (``activations``: the sum of every layer's output elements)."""

    costs: Costs
    activations: int
    layers: int


@dataclass(frozen=True)
class TypeShare:
    """Costs of all layers of one type."""

    type: str
    count: int
    params: int
    macs: int
    other_ops: int


@dataclass
class NetResult:
    """An evaluated network: rows in order, blocks, the flat stage graph, expectations."""

    spec: NetworkSpec
    batch: int
    rows: list[LayerRow] = field(default_factory=list)
    blocks: dict[str, BlockInfo] = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    expectations: list[Expectation] = field(default_factory=list)
    output: Tensor | None = None
    output_status: str = EXACT
    complete: bool = True
    mode: str = EVAL

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def input_shape(self) -> Shape:
        return self.spec.input_shape

    @property
    def output_shape(self) -> Shape:
        if self.output is not None:
            return self.output.shape
        return self.rows[-1].output_shape if self.rows else self.spec.input_shape

    def runs(self, row: LayerRow) -> bool:
        """Whether ``row`` runs in this mode (training-only rows run in ``train`` mode only)."""
        return self.mode == TRAIN or not row.training_only

    def activations(self, row: LayerRow) -> int:
        """The output elements of ``row`` per sample if it runs in this mode, else 0."""
        return row.activations if self.runs(row) else 0

    def totals(self) -> Totals:
        """Summed costs and the activations of the rows that run (:meth:`runs`)."""
        return Totals(sum_costs(r.costs for r in self.rows), sum(map(self.activations, self.rows)), len(self.rows))

    def breakdown(self) -> list[TypeShare]:
        """Costs per layer type, heaviest (MACs, then params) first."""
        shares: dict[str, list[int]] = {}
        for row in self.rows:
            entry = shares.setdefault(row.type, [0, 0, 0, 0])
            entry[0] += 1
            entry[1] += row.params
            entry[2] += row.macs
            entry[3] += row.other_ops
        ordered = sorted(shares.items(), key=lambda kv: (-kv[1][2], -kv[1][1], kv[0]))
        return [TypeShare(name, *values) for name, values in ordered]

    def heaviest(self, count: int = 5, key: str = "macs") -> list[LayerRow]:
        """The ``count`` layers with the most MACs (or ``key="params"``), ties in network order."""
        ranked = sorted(self.rows, key=lambda r: -cast(int, getattr(r, key)))
        return [r for r in ranked[:count] if getattr(r, key) > 0]

    def fold(self, depth: int | None) -> list[LayerRow]:
        """Rows with every block nested deeper than ``depth`` path levels folded into one row."""
        if depth is None:
            return list(self.rows)
        out: list[LayerRow] = []
        group: list[LayerRow] = []
        key = ""
        for row in self.rows:
            parts = row.name.split(".")
            if len(parts) <= depth:
                out.extend(self._folded(key, group))
                group, key = [], ""
                out.append(row)
                continue
            prefix = ".".join(parts[:depth])
            if group and prefix != key:
                out.extend(self._folded(key, group))
                group = []
            group.append(row)
            key = prefix
        out.extend(self._folded(key, group))
        return out

    def _folded(self, key: str, group: list[LayerRow]) -> list[LayerRow]:
        if not group:
            return []
        block = self.blocks.get(key)
        last = group[-1]
        return [
            LayerRow(
                name=key,
                type=block.type if block else "block",
                input_shapes=group[0].input_shapes,
                output_shape=last.output_shape,
                costs=sum_costs(r.costs for r in group),
                field=last.field,
                rf_status=last.rf_status,
                global_context=last.global_context,
                training_only=all(r.training_only for r in group),
                notes=tuple(dict.fromkeys(n for r in group for n in r.notes)),
                where=block.where if block else group[0].where,
            )
        ]

    def warnings(self) -> list[str]:
        """Every distinct note of every row, prefixed by the row's name."""
        return [f"{row.name}: {note}" for row in self.rows for note in row.notes]

    def warning_summary(self, names: int = 3) -> list[str]:
        """:meth:`warnings` with repeats collapsed, for reports read by people: one line per kind
        of note (:func:`note_kind`) with the number of layers and the first ``names`` of them
        (``12 layers (a, b, c and 9 more): <note>``); a note of a single layer keeps its full
        form. A WaveNet's 30 causal merges thus take one line; :meth:`warnings` lists them all.
        """
        groups: dict[str, list[tuple[str, str]]] = {}
        for row in self.rows:
            for note in row.notes:
                groups.setdefault(note_kind(note), []).append((row.name, note))
        lines = []
        for kind, members in groups.items():
            if len(members) == 1:
                lines.append(f"{members[0][0]}: {members[0][1]}")
                continue
            shown = ", ".join(name for name, _ in members[:names])
            more = f" and {len(members) - names:,} more" if len(members) > names else ""
            lines.append(f"{len(members):,} layers ({shown}{more}): {kind}")
        return lines

    @property
    def failed(self) -> list[Expectation]:
        return [e for e in self.expectations if not e.ok]

    @property
    def skipped(self) -> list[Expectation]:
        return [e for e in self.expectations if e.skipped]


class NetworkError(ConvcalcError):
    """An error while evaluating a network, carrying the rows evaluated before it.

    The message, layer, location, hint and exit code are the cause's, so generic handlers print
    it like any other error; :attr:`partial` lets the CLI print the table up to the failure.
    """

    def __init__(self, cause: ConvcalcError, partial: NetResult) -> None:
        super().__init__(cause.message, layer=cause.layer, where=cause.where, hint=cause.hint)
        self.exit_code = cause.exit_code
        self.cause = cause
        self.partial = partial
