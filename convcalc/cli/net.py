"""The network commands: ``net`` (evaluate a spec), ``check`` (the expectations specs state, for CI;
``--against MODEL.onnx`` also compares the spec with a model) and ``export`` (the spec as PyTorch code).

Thin typer wrappers: evaluation lives in :mod:`convcalc.network`, output in :mod:`convcalc.render`,
code generation, the peer counters' conventions and the comparison with a model in :mod:`convcalc.interop`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Optional, cast

import typer

from convcalc.cli.complete import spec_paths
from convcalc.cli.options import DebugOpt, Mode, ModeOpt, PeersOpt, guarded, write_file
from convcalc.errors import ConvcalcError, SpecError
from convcalc.render.check import CheckFormat
from convcalc.render.table import Format

SpecArg = Annotated[
    Optional[str],
    typer.Argument(
        metavar="SPEC",
        help="Network spec (YAML), or a library name such as resnet50; '-' reads standard input.",
        show_default=False,
        autocompletion=spec_paths,
    ),
]
SpecsArg = Annotated[
    list[str],
    typer.Argument(metavar="SPEC...", help="Spec files, globs such as 'specs/*.yaml', or library names.", autocompletion=spec_paths),
]
NetInOpt = Annotated[
    Optional[str],
    typer.Option("--in", "-i", help="A new input shape (e.g. 3x512x512), in the spec's layout.", show_default=False),
]
NetSetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a top-level variable: name=value (repeatable).", show_default=False),
]
ListOpt = Annotated[bool, typer.Option("--list", help="List the reference library: name, input, params, MACs, source.")]
CheckFmtOpt = Annotated[CheckFormat, typer.Option("--format", "-f", help="text, github (Actions annotations) or junit (XML).")]
DepthOpt = Annotated[
    Optional[int],
    typer.Option("--depth", min=1, help="Fold blocks nested deeper than N levels into one row.", show_default=False),
]
NetFmtOpt = Annotated[
    Format, typer.Option("--format", "-f", help="Output format (html: a self-contained report, best with -o FILE).")
]
OutputOpt = Annotated[
    Optional[str], typer.Option("--output", "-o", help="Write the output to this file instead of stdout.", show_default=False)
]
NetBatchOpt = Annotated[
    Optional[int],
    typer.Option(
        "--batch", "-b", min=1, help="Batch size (default: the spec's): scales MACs and activations.", show_default=False
    ),
]
AgainstOpt = Annotated[
    Optional[str],
    typer.Option("--against", metavar="MODEL.onnx", help="Compare the spec with an ONNX model.", show_default=False),
]
ByOrderOpt = Annotated[bool, typer.Option("--by-order", help="With --against: match layers by position, not by name.")]


class ExportTarget(str, Enum):
    """What ``convcalc export`` writes."""

    pytorch = "pytorch"


ToOpt = Annotated[ExportTarget, typer.Option("--to", help="Target framework.")]


def _emit(text: str, output: str | None) -> None:
    if output is None:
        typer.echo(text)
    else:
        write_file(text + "\n", output)


@guarded
def net_command(
    spec: SpecArg = None,
    in_shape: NetInOpt = None,
    set_values: NetSetOpt = None,
    fmt: NetFmtOpt = Format.table,
    depth: DepthOpt = None,
    batch: NetBatchOpt = None,
    output: OutputOpt = None,
    mode: ModeOpt = Mode.eval,
    list_library: ListOpt = False,
    peers: PeersOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Evaluate a network spec: per-layer shapes, params, MACs, receptive fields; totals and breakdowns.

    SPEC may name a library spec (a local file of that name wins; a note on standard error says
    which was used). On an error the table (or report) is written up to the failing layer, then
    the error (exit 2). --peers adds each popular counter's total and how it is built (JSON:
    always in totals.peers).
    """
    from convcalc.errors import SpecError
    from convcalc.network.evaluate import evaluate_network
    from convcalc.network.library import resolve
    from convcalc.network.result import NetworkError
    from convcalc.network.spec import load_network, override
    from convcalc.parse.layer import parse_set
    from convcalc.render.network import render_network

    if peers and fmt is Format.html:
        raise SpecError(
            "--peers adds a text table, which the html report has no place for.",
            hint="Use --peers with --format table, markdown or csv, or read totals.peers from --format json.",
        )
    if list_library:
        _emit(_library_listing(fmt), output)
        return
    if spec is None:
        raise SpecError("no spec given.", hint="convcalc net SPEC (a file or a library name; 'convcalc net --list' lists them).")
    path, note = resolve(spec)
    if note:
        typer.echo(f"convcalc: {note}", err=True)
    network = override(load_network(path), in_shape, parse_set(list(set_values or [])))
    try:
        result = evaluate_network(network, batch=batch, mode=mode.value)
    except NetworkError as err:
        if err.partial.rows:
            _emit(render_network(err.partial, fmt, depth), output)
        raise err.cause from None
    text = render_network(result, fmt, depth)
    if peers and fmt is not Format.json:
        from convcalc.interop.peers import network_layers, network_peer_totals, wrong_notes
        from convcalc.render.peers import render_peers

        wrong = wrong_notes(network_layers(result))
        text += "\n\n" + render_peers(network_peer_totals(result), result.batch * result.totals().macs, wrong, result.batch)
    _emit(text, output)


def _library_listing(fmt: Format) -> str:
    """One row per library spec: name, input, params, MACs (evaluated now) and the file."""
    from convcalc.network.evaluate import evaluate_network
    from convcalc.network.library import library_specs
    from convcalc.network.spec import load_network
    from convcalc.render.table import Cell, Table, render, shape_text

    entries: list[dict[str, object]] = []
    for name, path in library_specs().items():
        spec = load_network(str(path))
        totals = evaluate_network(spec).totals()
        entries.append(
            {"name": name, "input": shape_text(spec.input_shape, spec.layout), "params": totals.params, "macs": totals.macs, "source": str(path)}
        )
    cells: list[list[Cell]] = [[cast(Cell, v) for v in e.values()] for e in entries]
    return render(fmt, Table(["name", "input", "params", "macs", "source"], cells, title="convcalc reference library"), entries)


UpdateOpt = Annotated[
    bool,
    typer.Option(
        "--update", help="First write each spec's current totals and output shape as its 'expect' block (the rest of the file kept)."
    ),
]


@guarded
def check_command(
    specs: SpecsArg,
    in_shape: NetInOpt = None,
    set_values: NetSetOpt = None,
    fmt: CheckFmtOpt = CheckFormat.text,
    against: AgainstOpt = None,
    by_order: ByOrderOpt = False,
    mode: ModeOpt = Mode.eval,
    update: UpdateOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Check the expectations written in network specs (CI): exit 0 all hold, 1 any fails, 2 bad input.

    With --in or --set, expectations the change makes inapplicable are reported as skipped.
    With --against MODEL.onnx, also compare the spec with the model layer by layer (by name, or
    --by-order): type, output shape, params, MACs, receptive field; totals and output shape.
    A spec without expectations is reported (a warning). When $GITHUB_STEP_SUMMARY names a file
    (GitHub Actions), a Markdown summary table is appended to it. --update first writes each
    spec's current totals as its expectations.
    """
    from convcalc.network.check import check, check_exit_code
    from convcalc.parse.layer import parse_set
    from convcalc.render.check import render_check, render_check_summary

    if update:
        from convcalc.network.check import expand_paths
        from convcalc.network.update import update_file

        if in_shape is not None or set_values or mode is not Mode.eval or against is not None:
            raise SpecError(
                "--update writes the totals of the spec as it is written; --in, --set, --mode and --against do not apply.",
                hint="Drop --in/--set/--mode/--against (or edit the spec's input and variables first).",
            )
        for path in expand_paths(specs):
            try:
                message = update_file(path)
            except ConvcalcError as err:  # this spec stays as it is; the check below reports it
                message = f"not updated {path}: {err}"
            typer.echo(message, err=fmt is not CheckFormat.text)
    values = parse_set(list(set_values or []))
    if against is None:
        results = check(specs, in_shape, values, mode.value)
    elif len(specs) == 1:
        from convcalc.interop.compare import against as compare_against

        results = [compare_against(specs[0], against, by_order=by_order, in_shape=in_shape, values=values, mode=mode.value)]
    else:
        raise SpecError(f"--against compares one spec with the model, got {len(specs)} specs.", hint="Pass a single SPEC.")
    typer.echo(render_check(results, fmt))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as out:
            out.write(render_check_summary(results))
    code = check_exit_code(results)
    if code:
        raise typer.Exit(code)


@guarded
def export_command(spec: SpecArg, to: ToOpt = ExportTarget.pytorch, output: OutputOpt = None, debug: DebugOpt = False) -> None:
    """Write the network as code: one standalone PyTorch module (nn.Module class, build(), INPUT_SHAPE).

    Module paths equal the spec's layer paths; a layer type PyTorch cannot express is an error (exit 2).
    """
    from convcalc.errors import SpecError
    from convcalc.interop.torch_export import export_pytorch
    from convcalc.network.evaluate import evaluate_file
    from convcalc.network.library import resolve
    from convcalc.network.result import NetworkError

    if spec is None:
        raise SpecError("no spec given.", hint="convcalc export SPEC (a file or a library name; 'convcalc net --list' lists them).")
    path, note = resolve(spec)
    if note:
        typer.echo(f"convcalc: {note}", err=True)
    try:
        result = evaluate_file(path)
    except NetworkError as err:
        raise err.cause from None
    source = export_pytorch(result)
    if output is None:
        typer.echo(source, nl=False)
    else:
        write_file(source, output)


COMMANDS: dict[str, Callable[..., None]] = {"net": net_command, "check": check_command, "export": export_command}
