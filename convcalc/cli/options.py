"""What every command group shares, defined once: the error guard, the debug switch and the typer options.

Command modules import this one and never each other (:mod:`convcalc.cli.app` imports them lazily),
so the CLI has no import cycle. Layer-field flags (``--kernel-size``, ``--groups``, ...) are made
from the kinds' declared fields (:mod:`convcalc.kinds.base`): name, help and parser live there.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Annotated, Any, Optional, ParamSpec, get_type_hints

import typer

from convcalc.cli import complete
from convcalc.errors import ConvcalcError, SpecError, escape_controls
from convcalc.kinds.base import (
    BIAS,
    DEPTH_MULTIPLIER,
    DILATION,
    GROUPS,
    KERNEL,
    MID_CHANNELS,
    OUT_CHANNELS,
    OUTPUT_PADDING,
    PADDING,
    STRIDE,
    FieldDef,
)
from convcalc.kinds.factorised import VARIANT
from convcalc.parse.layer import LayerRequest, build_request, parse_set
from convcalc.parse.values import Layout
from convcalc.render.table import Format, table_format

P = ParamSpec("P")


def _env_debug() -> bool:
    return os.environ.get("CONVCALC_DEBUG", "") not in ("", "0")


STATE = {"debug": _env_debug()}
"""``debug``: re-raise errors with their traceback (``--debug`` or ``CONVCALC_DEBUG=1``)."""


def reset_debug(debug: bool) -> None:
    """Per invocation: an earlier ``--debug`` run must not stick (in-process use, tests)."""
    STATE["debug"] = _env_debug() or debug


def fail(message: str, code: int) -> typer.Exit:
    """Print ``message`` to stderr and return the Exit to raise."""
    sys.stderr.write(f"error: {escape_controls(message, keep=chr(10))}\n")
    return typer.Exit(code)


def warn(messages: Sequence[str]) -> None:
    """Print each message to stderr as ``warning: ...`` (standard output stays the report)."""
    for message in dict.fromkeys(messages):
        sys.stderr.write(f"warning: {message}\n")


def layer_request(
    type_name: str | None,
    flags: dict[str, object] | None,
    spec: str | None,
    in_shape: str | None,
    batch: int | None,
    layout: Layout | None,
) -> LayerRequest:
    """The layer a command's TYPE (or --spec), flags, --in, --batch and --layout describe; its warnings printed."""
    request = build_request(
        type_name, flags or {}, spec_path=spec, shape_text=in_shape, batch=batch, layout=layout.value if layout else None
    )
    warn(request.warnings)
    return request


def write_file(text: str, path: str) -> None:
    """Write ``text`` to ``path`` (``-o/--output``) and say so on stderr; an unwritable path is bad
    input (exit 2), not a crash."""
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as err:
        raise SpecError(f"cannot write {path}: {err.strerror or err}.", hint="Check the directory exists and is writable.") from None
    sys.stderr.write(f"wrote {path} ({len(text.encode()):,} bytes)\n")


def guarded(command: Callable[P, None]) -> Callable[P, None]:
    """Decorate a command: a :class:`~convcalc.errors.ConvcalcError` becomes its message and exit
    code, any other exception (a bug) exit 3 with one line; ``--debug`` re-raises both. A command
    parameter named ``debug`` switches debugging on for that run."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        STATE["debug"] = STATE["debug"] or bool(kwargs.get("debug"))
        try:
            command(*args, **kwargs)
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

    return run


# -- options shared by several command groups -------------------------------------------------------

TypeArg = Annotated[
    Optional[str],
    typer.Argument(
        metavar="TYPE",
        help="Layer type, e.g. conv2d (see 'convcalc types').",
        show_default=False,
        autocompletion=complete.type_names,
    ),
]
InOpt = Annotated[
    Optional[str], typer.Option("--in", "-i", help="Input shape, channels first: CxL, CxHxW or CxDxHxW.", show_default=False)
]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set",
        help="Any other field as name=value (repeatable).",
        show_default=False,
        autocompletion=complete.field_assignments,
    ),
]
BatchOpt = Annotated[
    Optional[int],
    typer.Option("--batch", "-b", help="Batch size: scales MACs and activations, not params.", show_default=False),
]
LayoutOpt = Annotated[
    Optional[Layout], typer.Option("--layout", help="How --in is written (default channels_first).", show_default=False)
]
SpecOpt = Annotated[
    Optional[str], typer.Option("--spec", help="Single-layer YAML spec ('-' reads stdin); flags override it.", show_default=False)
]


def _table_format(value: Format) -> str:
    """Refuse a network-only format while parsing, before a command spends any work (exit 2).
    Returns the raw choice: typer converts what a callback returns to the enum once more."""
    try:
        return table_format(value).value
    except SpecError as err:
        raise typer.BadParameter(str(err)) from None


FmtOpt = Annotated[
    Format, typer.Option("--format", "-f", callback=_table_format, help="Output format (html: only 'convcalc net').")
]
"""The format of a table report; ``net`` takes every :class:`~convcalc.render.table.Format` (its own option)."""
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show Python tracebacks on errors.")]


class Mode(str, Enum):
    """Evaluation mode of a network (:data:`convcalc.network.result.MODES`)."""

    eval = "eval"
    train = "train"


ModeOpt = Annotated[
    Mode, typer.Option("--mode", help="eval: training-only items (aux heads) count params only; train: their work too.")
]
PeersOpt = Annotated[
    bool, typer.Option("--peers", help="Also print what torchinfo, fvcore, ptflops, thop, torchscan, FlopCounterMode report.")
]
DilationOpt = Annotated[Optional[str], typer.Option("--dilation", "-d", help=DILATION.help, show_default=False)]
OutputPaddingOpt = Annotated[Optional[str], typer.Option("--output-padding", help=OUTPUT_PADDING.help, show_default=False)]


# -- layer-field flags, from the kinds' declared fields ---------------------------------------------

SHORT_FLAGS = {"out_channels": "-o", "kernel_size": "-k", "stride": "-s", "padding": "-p", "dilation": "-d", "groups": "-g"}
"""The one-letter flags of the most used fields (the rest have only their long ``--field-name``)."""

LAYER_FIELDS: tuple[FieldDef, ...] = (
    OUT_CHANNELS, KERNEL, STRIDE, PADDING, DILATION, GROUPS, OUTPUT_PADDING, DEPTH_MULTIPLIER, MID_CHANNELS, VARIANT, BIAS,
)  # fmt: skip
"""Fields with their own flag in the layer commands and ``run``; every other field goes through ``--set``."""

COMPARE_FIELDS: tuple[FieldDef, ...] = (OUT_CHANNELS, KERNEL, STRIDE, PADDING, DILATION, GROUPS, DEPTH_MULTIPLIER, BIAS)
"""The fields ``compare`` applies to every type it compares."""


@functools.cache
def flag_annotation(field: FieldDef) -> object:
    """The typer option of one field: ``--kernel-size/-k TEXT`` (values are parsed by the field),
    ``--bias/--no-bias`` for a boolean field."""
    long = "--" + field.name.replace("_", "-")
    short = (SHORT_FLAGS[field.name],) if field.name in SHORT_FLAGS else ()
    help_text = field.help[0].upper() + field.help[1:] + "."
    if field.name == BIAS.name:
        return Annotated[Optional[bool], typer.Option(f"{long}/--no-{long[2:]}", help=help_text, show_default=False)]
    return Annotated[Optional[str], typer.Option(long, *short, help=help_text, show_default=False)]


class LayerFlags(dict[str, object]):
    """Field name -> raw value, as a command decorated by :func:`with_layer_flags` receives them;
    ``flagged`` names the ones given by their own flag (``-k 3``) rather than ``--set``."""

    flagged: frozenset[str] = frozenset()


def with_layer_flags(fields: Sequence[FieldDef], *, after: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command one option per field (inserted after its parameter ``after``) plus ``--set``;
    the command receives the given ones as ``flags`` (field name -> raw value; ``--set`` pairs included).

    The command's own signature declares ``flags`` (and no field parameters): typer sees the
    rewritten signature, the command sees one mapping, so no command lists the fields by hand."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        hints = get_type_hints(command, include_extras=True)
        own = [p.replace(annotation=hints[p.name]) for p in inspect.signature(command).parameters.values() if p.name != "flags"]
        extra = [
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=flag_annotation(f)) for f in fields
        ]
        extra.append(inspect.Parameter("set_fields", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=SetOpt))
        at = [p.name for p in own].index(after) + 1
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in (*own[:at], *extra, *own[at:])]

        @functools.wraps(command)
        def with_flags(**kwargs: Any) -> None:
            flags = LayerFlags({f.name: kwargs.pop(f.name) for f in fields if kwargs.get(f.name) is not None})
            flags.flagged = frozenset(flags)
            kwargs = {k: v for k, v in kwargs.items() if k not in {f.name for f in fields}}
            flags.update(parse_set(list(kwargs.pop("set_fields", None) or [])))
            command(flags=flags, **kwargs)

        with_flags.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        with_flags.__annotations__ = {p.name: p.annotation for p in params}
        return with_flags

    return decorate
