"""The single-layer commands: ``shape``, ``params``, ``flops``, ``rf`` and ``layer`` (one view each)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated

import typer

from convcalc.cli.options import (
    LAYER_FIELDS,
    BatchOpt,
    DebugOpt,
    FmtOpt,
    InOpt,
    LayoutOpt,
    PeersOpt,
    SpecOpt,
    TypeArg,
    guarded,
    layer_request,
    with_layer_flags,
)
from convcalc.render.table import Format

VIEW_HELP = {
    "shape": "Output shape (and receptive field) of one layer.",
    "params": "Learnable parameters of one layer (weights and biases separately).",
    "flops": "MACs, FLOPs (= 2 x MACs) and bias additions of one layer.",
    "rf": "Receptive-field step and cumulative field per axis.",
    "layer": "Everything at once: shapes, parameters, MACs/FLOPs, receptive field, stages.",
}
ExplainOpt = Annotated[bool, typer.Option("--explain", help="Print every formula with the numbers substituted.")]


@functools.cache
def view_command(view: str) -> Callable[..., None]:
    """The command printing one view of a layer."""

    @guarded
    @with_layer_flags(LAYER_FIELDS, after="in_shape")
    def command(
        type_name: TypeArg = None,
        in_shape: InOpt = None,
        flags: dict[str, object] | None = None,
        batch: BatchOpt = None,
        layout: LayoutOpt = None,
        spec: SpecOpt = None,
        fmt: FmtOpt = Format.table,
        explain: ExplainOpt = False,
        peers: PeersOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        from convcalc.engine import evaluate_layer
        from convcalc.render.layer import layer_table
        from convcalc.render.table import render
        from convcalc.report import costs, layer_to_dict

        request = layer_request(type_name, flags, spec, in_shape, batch, layout)
        result = evaluate_layer(request.spec, request.shape)
        table = layer_table(result, view, request.batch, request.layout, explain)
        data = layer_to_dict(result, request.batch)
        peer_table = ""
        if peers:  # imported only with --peers: the arithmetic path stays light
            from convcalc.interop.peers import peer_totals, wrong_notes
            from convcalc.render.peers import render_peers

            layers = [(result.spec.kind, result.stages)]
            data["peers"] = totals = peer_totals(layers, request.batch)
            peer_table = render_peers(totals, costs(result.stages, request.batch).macs, wrong_notes(layers), request.batch)
        typer.echo(render(fmt, table, data))
        if peer_table and fmt is not Format.json:
            typer.echo("\n" + peer_table)

    command.__doc__ = VIEW_HELP[view]
    return command


class Views(Mapping[str, Callable[..., None]]):
    """The view commands by name, each built when first asked for (``main`` builds only the one that runs)."""

    def __getitem__(self, view: str) -> Callable[..., None]:
        if view not in VIEW_HELP:
            raise KeyError(view)
        return view_command(view)

    def __iter__(self) -> Iterator[str]:
        return iter(VIEW_HELP)

    def __len__(self) -> int:
        return len(VIEW_HELP)


COMMANDS = Views()
