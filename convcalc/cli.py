"""The command line: thin typer commands; the only place that prints and exits.

Exit codes: 0 success, 1 a failed check, 2 bad input (spec, flags, impossible layer),
3 an internal error (a bug: please report it with ``--debug``).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Annotated, Optional, TypeVar

import typer

from convcalc import __version__
from convcalc.errors import ConvcalcError

T = TypeVar("T")


def _env_debug() -> bool:
    return os.environ.get("CONVCALC_DEBUG", "") not in ("", "0")


STATE = {"debug": _env_debug()}


def fail(message: str, code: int) -> typer.Exit:
    """Print ``message`` to stderr and return the Exit to raise."""
    sys.stderr.write(f"error: {message}\n")
    return typer.Exit(code)


def guarded(body: Callable[[], T]) -> T:
    """Run a command body: ConvcalcError -> message + its exit code; other errors -> exit 3."""
    try:
        return body()
    except ConvcalcError as err:
        if STATE["debug"]:
            raise
        raise fail(str(err), err.exit_code) from None
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as err:  # a bug: never show a traceback unless asked
        if STATE["debug"]:
            raise
        raise fail(
            f"internal error: {type(err).__name__}: {err} (run with --debug for the traceback and please report it)", 3
        ) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"convcalc {__version__}")
        raise typer.Exit()


def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks on errors.")] = False,
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
) -> None:
    """Exact arithmetic of convolutions: shapes, parameters, MACs/FLOPs and receptive fields."""
    STATE["debug"] = _env_debug() or debug  # per invocation: an earlier --debug run must not stick (in-process use)


class Fmt(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


class Layout(str, Enum):
    channels_first = "channels_first"
    channels_last = "channels_last"


TypeArg = Annotated[
    Optional[str], typer.Argument(metavar="TYPE", help="Layer type, e.g. conv2d (see 'convcalc types').", show_default=False)
]
InOpt = Annotated[
    Optional[str], typer.Option("--in", "-i", help="Input shape, channels first: CxL, CxHxW or CxDxHxW.", show_default=False)
]
OutOpt = Annotated[Optional[str], typer.Option("--out-channels", "-o", help="Output channels.", show_default=False)]
KOpt = Annotated[Optional[str], typer.Option("--kernel-size", "-k", help="Kernel size: 3 or per axis 1x7.", show_default=False)]
SOpt = Annotated[Optional[str], typer.Option("--stride", "-s", help="Stride: int or per axis.", show_default=False)]
POpt = Annotated[
    Optional[str],
    typer.Option("--padding", "-p", help="int, per axis (1x2), pairs (0:1x0:1), valid, same, full, causal.", show_default=False),
]
DOpt = Annotated[Optional[str], typer.Option("--dilation", "-d", help="Dilation: int or per axis.", show_default=False)]
GOpt = Annotated[Optional[str], typer.Option("--groups", "-g", help="Channel groups.", show_default=False)]
OPOpt = Annotated[Optional[str], typer.Option("--output-padding", help="Transposed conv output padding.", show_default=False)]
DMOpt = Annotated[Optional[str], typer.Option("--depth-multiplier", help="Depthwise multiplier (Keras).", show_default=False)]
MidOpt = Annotated[Optional[str], typer.Option("--mid-channels", help="Channels between factorised stages.", show_default=False)]
VarOpt = Annotated[Optional[str], typer.Option("--variant", help="P3D variant A, B or C.", show_default=False)]
BiasOpt = Annotated[
    Optional[bool], typer.Option("--bias/--no-bias", help="Learnable bias (default: yes, as PyTorch).", show_default=False)
]
SetOpt = Annotated[
    Optional[list[str]], typer.Option("--set", help="Any other field as name=value (repeatable).", show_default=False)
]
BatchOpt = Annotated[
    Optional[int], typer.Option("--batch", "-b", help="Batch size: scales MACs and activations, not params.", show_default=False)
]
LayoutOpt = Annotated[
    Optional[Layout], typer.Option("--layout", help="How --in is written (default channels_first).", show_default=False)
]
SpecOpt = Annotated[
    Optional[str], typer.Option("--spec", help="Single-layer YAML spec ('-' reads stdin); flags override it.", show_default=False)
]
FmtOpt = Annotated[Fmt, typer.Option("--format", "-f", help="Output format.")]
ExplainOpt = Annotated[bool, typer.Option("--explain", help="Print every formula with the numbers substituted.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show Python tracebacks on errors.")]


LAYER_FLAGS = (
    "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
    "output_padding", "depth_multiplier", "mid_channels", "variant", "bias",
)  # fmt: skip
"""Command parameters that are layer fields (named as the fields)."""


def layer_flags(given: Mapping[str, object]) -> dict[str, object]:
    """The layer-field flags a command was given (``None`` = not given) plus its ``--set`` pairs."""
    from convcalc.request import parse_set

    flags = {name: given[name] for name in LAYER_FLAGS if given.get(name) is not None}
    set_fields = given.get("set_fields")
    flags.update(parse_set(list(set_fields) if isinstance(set_fields, list) else []))
    return flags


VIEW_HELP = {
    "shape": "Output shape (and receptive field) of one layer.",
    "params": "Learnable parameters of one layer (weights and biases separately).",
    "flops": "MACs, FLOPs (= 2 x MACs) and bias additions of one layer.",
    "rf": "Receptive-field step and cumulative field per axis.",
    "layer": "Everything at once: shapes, parameters, MACs/FLOPs, receptive field, stages.",
}


def _layer_command(view: str, target: typer.Typer) -> None:
    def command(
        type_name: TypeArg = None,
        in_shape: InOpt = None,
        out_channels: OutOpt = None,
        kernel_size: KOpt = None,
        stride: SOpt = None,
        padding: POpt = None,
        dilation: DOpt = None,
        groups: GOpt = None,
        output_padding: OPOpt = None,
        depth_multiplier: DMOpt = None,
        mid_channels: MidOpt = None,
        variant: VarOpt = None,
        bias: BiasOpt = None,
        set_fields: SetOpt = None,
        batch: BatchOpt = None,
        layout: LayoutOpt = None,
        spec: SpecOpt = None,
        fmt: FmtOpt = Fmt.table,
        explain: ExplainOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        STATE["debug"] = STATE["debug"] or debug
        given = dict(locals())

        def body() -> None:
            from convcalc.engine import evaluate_layer
            from convcalc.render import Format, render
            from convcalc.report import layer_to_dict
            from convcalc.request import build_request
            from convcalc.views import layer_table

            flags = layer_flags(given)
            request = build_request(
                type_name, flags, spec_path=spec, shape_text=in_shape, batch=batch, layout=layout.value if layout else None
            )
            result = evaluate_layer(request.spec, request.shape)
            table = layer_table(result, view, request.batch, request.layout, explain)
            typer.echo(render(Format(fmt.value), table, layer_to_dict(result, request.batch)))

        guarded(body)

    command.__doc__ = VIEW_HELP[view]
    target.command(view, help=VIEW_HELP[view])(command)


def types_command(
    name: Annotated[Optional[str], typer.Argument(help="Show one type in detail.", show_default=False)] = None,
    formulas: Annotated[bool, typer.Option("--formulas", help="Also print every type's formulas and sources.")] = False,
    fmt: FmtOpt = Fmt.table,
) -> None:
    """Every layer type with its aliases, fields and formulas."""

    def body() -> None:
        from convcalc.commands import types_output

        typer.echo(types_output(name, formulas, fmt.value))

    guarded(body)


def compare_command(
    types: Annotated[
        Optional[list[str]],
        typer.Argument(metavar="[TYPES]...", help="Types to compare (default: a standard set).", show_default=False),
    ] = None,
    in_shape: InOpt = None,
    out_channels: OutOpt = None,
    kernel_size: KOpt = None,
    stride: SOpt = None,
    padding: POpt = None,
    dilation: DOpt = None,
    groups: GOpt = None,
    depth_multiplier: DMOpt = None,
    bias: BiasOpt = None,
    batch: BatchOpt = None,
    fmt: FmtOpt = Fmt.table,
) -> None:
    """Several types side by side for the same input, output channels and kernel, with exact ratios."""
    given = dict(locals())

    def body() -> None:
        from convcalc.commands import compare_output

        flags = layer_flags(given)
        typer.echo(compare_output(types or [], flags, in_shape, batch, fmt.value))

    guarded(body)


def solve_command(
    in_size: Annotated[str, typer.Option("--in", "-i", help="Input size (one axis, or per axis 224x224).")],
    out_size: Annotated[
        Optional[str],
        typer.Option("--out", help="Wanted output size; omit to ask which padding keeps the size.", show_default=False),
    ] = None,
    kernel_size: KOpt = None,
    stride: SOpt = None,
    padding: Annotated[
        Optional[str], typer.Option("--padding", "-p", help="Fix the (symmetric) padding.", show_default=False)
    ] = None,
    dilation: DOpt = None,
    transposed: Annotated[bool, typer.Option("--transposed", help="Solve for a transposed convolution (upsampling).")] = False,
    limit: Annotated[int, typer.Option("--limit", help="Most solutions to list per axis.")] = 20,
    fmt: FmtOpt = Fmt.table,
) -> None:
    """Inverse questions: which padding keeps the size; which kernel/stride/padding/dilation map i to o."""

    def body() -> None:
        from convcalc.commands import solve_output

        typer.echo(solve_output(in_size, out_size, kernel_size, stride, padding, dilation, transposed, limit, fmt.value))

    guarded(body)


def overlap_command(
    in_size: Annotated[str, typer.Option("--in", "-i", help="Input size: L (1D row) or HxW (2D grid), no channels.")],
    kernel_size: Annotated[str, typer.Option("--kernel-size", "-k", help="Kernel size.")],
    stride: Annotated[str, typer.Option("--stride", "-s", help="Stride.")] = "1",
    padding: Annotated[str, typer.Option("--padding", "-p", help="Crop per side (int or per axis).")] = "0",
    dilation: DOpt = None,
    output_padding: OPOpt = None,
    fmt: FmtOpt = Fmt.table,
) -> None:
    """How many input pixels feed each output pixel of a transposed convolution (checkerboard check)."""

    def body() -> None:
        from convcalc.commands import overlap_output

        typer.echo(overlap_output(in_size, kernel_size, stride, padding, dilation or "1", output_padding or "0", fmt.value))

    guarded(body)


def _network(target: typer.Typer) -> None:
    from convcalc import cli_net

    cli_net.register(target)


def _executor(target: typer.Typer) -> None:
    from convcalc import cli_run

    cli_run.register(target)


Registrar = Callable[[typer.Typer], None]


def _plain(name: str, function: Callable[..., None]) -> Registrar:
    def register(target: typer.Typer) -> None:
        target.command(name)(function)

    return register


REGISTRARS: dict[str, Registrar] = {
    **{view: functools.partial(_layer_command, view) for view in VIEW_HELP},
    "types": _plain("types", types_command),
    "compare": _plain("compare", compare_command),
    "solve": _plain("solve", solve_command),
    "overlap": _plain("overlap", overlap_command),
    "net": _network,
    "check": _network,
    "import": _network,
    "run": _executor,
    "peak": _executor,
}
"""How each command is added to an app; the network commands come from :mod:`convcalc.cli_net`."""


def build_app(only: str | None = None) -> typer.Typer:
    """The convcalc app with every command, or only the one about to run (typer converts every
    registered command to click on each invocation, so a one-command app starts faster)."""
    target = typer.Typer(
        name="convcalc",
        help="Exact arithmetic of convolutions: shapes, parameters, MACs/FLOPs and receptive fields.",
        add_completion=False,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    target.callback()(main_options)
    registrars = [REGISTRARS[only]] if only in REGISTRARS else list(dict.fromkeys(REGISTRARS.values()))
    for register in registrars:
        register(target)
    return target


def __getattr__(name: str) -> typer.Typer:
    """``convcalc.cli.app``: the full app, built on first access (tests drive it with CliRunner)."""
    if name == "app":
        return build_app()
    raise AttributeError(name)


def main() -> None:
    """Console-script entry point: build only the command named on the command line."""
    name = sys.argv[1] if len(sys.argv) > 1 else None
    build_app(name)()
