"""The ``types``, ``compare``, ``solve`` and ``overlap`` commands: typer wrappers, and their bodies (testable without typer)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Annotated, Optional

import typer

from convcalc.cli.options import (
    COMPARE_FIELDS,
    BatchOpt,
    DilationOpt,
    FmtOpt,
    InOpt,
    OutputPaddingOpt,
    guarded,
    with_layer_flags,
)
from convcalc.engine import LayerResult, evaluate_layer
from convcalc.errors import SpecError
from convcalc.formula import axis_names
from convcalc.inverse import Search, Solution, check_sizes, same_padding, solve_conv, solve_transposed
from convcalc.kinds import all_kinds, lookup
from convcalc.kinds.base import REQUIRED
from convcalc.parse.layer import build_request
from convcalc.parse.values import MAX_DIM, broadcast_axes, parse_axes
from convcalc.primitives.conv import Conv, overlap_counts, uneven_overlap
from convcalc.render.layer import types_table
from convcalc.render.table import Format, Table, render
from convcalc.report import costs, layer_to_dict

DEFAULT_COMPARE = {
    1: ("conv1d", "separable1d", "depthwise1d"),
    2: ("conv2d", "separable2d", "spatial_separable2d", "flattened2d"),
    3: ("conv3d", "separable3d", "conv2plus1d", "p3d", "spatial_separable3d", "flattened3d"),
}
MAX_OVERLAP = 4096
MAX_GRID = 64


def types_output(name: str | None, formulas: bool, fmt: Format) -> str:
    """The ``types`` listing, or one type in detail."""
    if name is None:
        kinds = all_kinds()
        data: object = [_kind_dict(k) for k in kinds]
        return render(fmt, types_table(kinds, formulas), data)
    kind = lookup(name)
    table = Table(["field", "aliases", "default", "meaning"], title=f"{kind.name}: {kind.summary}", drop=(1,), fold=3)
    for f in kind.fields:
        table.rows.append([f.name, ", ".join(f.aliases), default_text(f.default), f.help])
    table.notes = [
        f"aliases: {', '.join(kind.aliases) or '-'}",
        *(f"formula: {line}" for line in kind.formulas),
        f"source: {kind.source}",
    ]
    return render(fmt, table, _kind_dict(kind))


def default_text(value: object) -> str:
    """A default as a user would write it: ``1``, ``0``, ``true``, ``required``, ``from input``."""
    if value is REQUIRED:
        return "required"
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        flat = [v[0] if isinstance(v, tuple) and v[0] == v[1] else v for v in value]
        return "x".join(str(v) for v in flat)
    return str(value)


def _kind_dict(kind: object) -> dict[str, object]:
    k = lookup(getattr(kind, "name", ""))
    return {
        "type": k.name,
        "aliases": list(k.aliases),
        "rank": k.rank,
        "summary": k.summary,
        "fields": [{"name": f.name, "aliases": list(f.aliases), "required": f.required, "help": f.help} for f in k.fields],
        "formulas": list(k.formulas),
        "source": k.source,
    }


def ratio_text(value: Fraction) -> str:
    """``137/1152 ≈ 0.1189``."""
    exact = str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    return f"{exact} ≈ {float(value):.4g}"


def _separable_note(base: LayerResult, other: LayerResult) -> str | None:
    """Seed formula for depthwise separable vs standard with equal output sizes: 1/C_out + 1/prod(k)."""
    if other.spec.kind.startswith("separable") and base.spec.kind.startswith("conv") and len(base.stages) == 1:
        op = base.stages[0].op
        if (
            isinstance(op, Conv)
            and op.groups == 1
            and other.output_shape == base.output_shape
            and other.spec.get("depth_multiplier") == 1
        ):
            k = 1
            for size in op.kernel_size:
                k *= size
            value = Fraction(1, op.out_channels) + Fraction(1, k)
            return f"{other.spec.kind} / {base.spec.kind} MACs = 1/C_out + 1/prod(k) = 1/{op.out_channels} + 1/{k} = {ratio_text(value)}"
    return None


def _flag_text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def compare_output(types: list[str], flags: Mapping[str, object], shape_text: str | None, batch: int | None, fmt: Format) -> str:
    """Evaluate every type with the shared flags and report exact ratios against the first.

    A shared flag that only some of the types have (``--groups`` for conv2d but not separable2d)
    is applied where it exists and said in a note; an optional one is also named in the label of
    each row that took it, so the baseline row states its own settings. A type given twice is
    compared once."""
    if shape_text is None:
        raise SpecError("compare needs an input shape.", hint="Add --in CxHxW, e.g. --in 3x7x7.")
    rank = len(parse_axes(shape_text, "input")) - 1
    names = types or list(DEFAULT_COMPARE.get(rank, ()))
    if not names:
        raise SpecError(
            f"compare has no standard set of types for the input {shape_text} ({rank} spatial axes).",
            hint=f"Name the types to compare, or give a shape with 1 to 3 spatial sizes such as --in 3x7x7"
            f" (standard sets: {', '.join(f'{r}D' for r in sorted(DEFAULT_COMPARE))}).",
        )
    kinds = [lookup(name) for name in names]
    unique = list({kind.name: kind for kind in kinds}.values())
    notes = [f"{name} given {count} times: compared once." for name, count in Counter(k.name for k in kinds).items() if count > 1]
    labels = {kind.name: kind.name for kind in unique}
    for key, value in flags.items():
        fields = {kind.name: field for kind in unique if (field := kind.field(key)) is not None}
        if fields and len(fields) < len(unique):
            field = next(iter(fields.values()))
            setting = f"{field.name}={_flag_text(value)}"
            others = [kind.name for kind in unique if kind.name not in fields]
            notes.append(f"{setting} applies to {', '.join(fields)}; not to {', '.join(others)} (no such field).")
            for name in fields if not field.required else ():  # a required field is part of every row
                labels[name] += f" {setting}"
    results = [build_request(kind.name, flags, shape_text=shape_text, batch=batch, only_known=True) for kind in unique]
    evaluated = [evaluate_layer(r.spec, r.shape) for r in results]
    scale = results[0].batch if results else 1
    base = costs(evaluated[0].stages, scale)
    table = Table(["type", "output", "params", "MACs", "params ratio", "MACs ratio"], title=f"compare on input {shape_text}")
    for result in evaluated:
        total = costs(result.stages, scale)
        table.rows.append(
            [
                labels[result.spec.kind],
                "x".join(map(str, result.output_shape)),
                total.params,
                total.macs,
                ratio_text(Fraction(total.params, base.params)) if base.params else "-",
                ratio_text(Fraction(total.macs, base.macs)) if base.macs else "-",
            ]
        )
        note = _separable_note(evaluated[0], result)
        if note:
            table.notes.append(note)
    table.notes.extend(notes)
    table.notes.append(f"ratios are exact, relative to {labels[evaluated[0].spec.kind]}.")
    data = [{**layer_to_dict(r, scale), "label": labels[r.spec.kind]} for r in evaluated]
    return render(fmt, table, data)


def _axis_values(text: str | None, rank: int, field: str) -> list[int | None]:
    if text is None:
        return [None] * rank
    minimum = 0 if field == "padding" else 1  # sizes, kernels, strides and dilations are >= 1
    return list(broadcast_axes(parse_axes(text, field, minimum=minimum), rank, field))


def _sorted(solutions: list[Solution], limit: int) -> list[Solution]:
    return sorted(solutions, key=lambda s: (s.dilation, s.stride, s.kernel, s.padding, s.output_padding))[:limit]


def solve_output(
    in_text: str,
    out_text: str | None,
    kernel: str | None,
    stride: str | None,
    padding: str | None,
    dilation: str | None,
    transposed: bool,
    limit: int,
    fmt: Format,
) -> str:
    """Answer the inverse questions per axis (see :mod:`convcalc.inverse`)."""
    sizes = parse_axes(in_text, "--in")
    rank = len(sizes)
    ks, ss, ps, ds = (
        _axis_values(v, rank, n)
        for v, n in ((kernel, "kernel_size"), (stride, "stride"), (padding, "padding"), (dilation, "dilation"))
    )
    names = axis_names(rank) if rank <= 3 else tuple(f"x{i}" for i in range(rank))
    if out_text is None:
        return _keep_size(sizes, ks, ss, ds, names, fmt)
    table = Table(["axis", "in", "out", "kernel", "stride", "padding", "dilation", "output_padding"])
    table.title = f"{'transposed ' if transposed else ''}convolutions mapping {in_text} to {out_text} (symmetric padding)"
    data = []
    outs = broadcast_axes(parse_axes(out_text, "--out"), rank, "--out")
    for axis, i, o, k, s, p, d in zip(names, sizes, outs, ks, ss, ps, ds, strict=True):
        check_sizes(i, o)
        solver = solve_transposed if transposed else solve_conv
        found = _sorted(list(solver(i, o, Search(kernel=k, stride=s, padding=p, dilation=d))), limit)
        for sol in found:
            table.rows.append([axis, i, o, sol.kernel, sol.stride, sol.padding[0], sol.dilation, sol.output_padding])
        data.append({"axis": axis, "in": i, "out": o, "solutions": [sol.__dict__ for sol in found]})
        if not found:
            table.notes.append(f"{axis}: no solution with kernel <= 11, stride <= 8, dilation <= 4; fix fewer values.")
    return render(fmt, table, data)


def _keep_size(
    sizes: tuple[int, ...], ks: list[int | None], ss: list[int | None], ds: list[int | None], names: tuple[str, ...], fmt: Format
) -> str:
    table = Table(
        ["axis", "in", "kernel", "stride", "dilation", "out = ceil(i/s)", "same pair (before, after)", "symmetric p (PyTorch)"]
    )
    table.title = "padding that keeps the size (out = ceil(in / stride), TF/Keras 'same')"
    data = []
    for axis, i, k_given, s_given, d_given in zip(names, sizes, ks, ss, ds, strict=True):
        k, s, d = k_given or 3, s_given or 1, d_given or 1
        pair = same_padding(i, k, s, d)
        want = -(-i // s)
        symmetric = [sol.padding[0] for sol in solve_conv(i, want, Search(kernel=k, stride=s, dilation=d))]
        table.rows.append([axis, i, k, s, d, want, f"{pair[0]}, {pair[1]}", ", ".join(map(str, symmetric)) or "none"])
        data.append(
            {
                "axis": axis,
                "in": i,
                "kernel": k,
                "stride": s,
                "dilation": d,
                "out": want,
                "same": list(pair),
                "symmetric": symmetric,
            }
        )
    return render(fmt, table, data)


def overlap_output(in_text: str, kernel: str, stride: str, padding: str, dilation: str, output_padding: str, fmt: Format) -> str:
    """Per-axis rows of contribution counts, and the 2D grid (their outer product)."""
    sizes = parse_axes(in_text, "--in")
    rank = len(sizes)
    if rank > 2:
        raise SpecError("overlap prints a 1D row or a 2D grid: give --in as L or HxW (no channels).")
    ks, ss, ps, ds, ops = (
        broadcast_axes(parse_axes(v, n, minimum=0 if n in ("padding", "output_padding") else 1), rank, n)
        for v, n in (
            (kernel, "kernel_size"),
            (stride, "stride"),
            (padding, "padding"),
            (dilation, "dilation"),
            (output_padding, "output_padding"),
        )
    )
    rows = []
    for axis, i, k, s, p, d, op in zip(axis_names(rank), sizes, ks, ss, ps, ds, ops, strict=True):
        if i * k > MAX_DIM:
            raise SpecError(f"--in {i} with kernel {k} is too large to enumerate (limit {MAX_DIM:,} products).")
        counts = overlap_counts(i, k, s, (p, p), d, op)
        if len(counts) > MAX_OVERLAP:
            raise SpecError(f"the output along {axis} has {len(counts):,} pixels; overlap prints at most {MAX_OVERLAP:,}.")
        rows.append((axis, counts, uneven_overlap(k, s, d)))
    table = Table(["axis", "output size", "contributions per output pixel", "overlap"], title="transposed convolution overlap")
    for axis, counts, uneven in rows:
        table.rows.append([axis, len(counts), " ".join(map(str, counts)), "UNEVEN (checkerboard)" if uneven else "even"])
    if rank == 2 and all(len(c) <= MAX_GRID for _, c, _ in rows):
        grid = [[a * b for b in rows[1][1]] for a in rows[0][1]]
        width = max(len(str(v)) for line in grid for v in line)
        table.notes.append("2D grid (row count x column count):")
        table.notes.extend(" ".join(str(v).rjust(width) for v in line) for line in grid)
    data: dict[str, object] = {"axes": [{"axis": a, "counts": c, "uneven": u} for a, c, u in rows]}
    if rank == 2:
        data["grid"] = [[a * b for b in rows[1][1]] for a in rows[0][1]]
    return render(fmt, table, data)


# -- the typer commands -------------------------------------------------------------------------------


@guarded
def types_command(
    name: Annotated[Optional[str], typer.Argument(help="Show one type in detail.", show_default=False)] = None,
    formulas: Annotated[bool, typer.Option("--formulas", help="Also print every type's formulas and sources.")] = False,
    fmt: FmtOpt = Format.table,
) -> None:
    """Every layer type with its aliases, fields and formulas."""
    typer.echo(types_output(name, formulas, fmt))


@guarded
@with_layer_flags(COMPARE_FIELDS, after="in_shape")
def compare_command(
    types: Annotated[
        Optional[list[str]],
        typer.Argument(metavar="[TYPES]...", help="Types to compare (default: a standard set).", show_default=False),
    ] = None,
    in_shape: InOpt = None,
    flags: dict[str, object] | None = None,
    batch: BatchOpt = None,
    fmt: FmtOpt = Format.table,
) -> None:
    """Several types side by side for the same input, output channels and kernel, with exact ratios."""
    typer.echo(compare_output(types or [], flags or {}, in_shape, batch, fmt))


@guarded
def solve_command(
    in_size: Annotated[str, typer.Option("--in", "-i", help="Input size (one axis, or per axis 224x224).")],
    out_size: Annotated[
        Optional[str],
        typer.Option("--out", help="Wanted output size; omit to ask which padding keeps the size.", show_default=False),
    ] = None,
    kernel_size: Annotated[Optional[str], typer.Option("--kernel-size", "-k", help="Fix the kernel size.", show_default=False)] = None,
    stride: Annotated[Optional[str], typer.Option("--stride", "-s", help="Fix the stride.", show_default=False)] = None,
    padding: Annotated[
        Optional[str], typer.Option("--padding", "-p", help="Fix the (symmetric) padding.", show_default=False)
    ] = None,
    dilation: DilationOpt = None,
    transposed: Annotated[bool, typer.Option("--transposed", help="Solve for a transposed convolution (upsampling).")] = False,
    limit: Annotated[int, typer.Option("--limit", help="Most solutions to list per axis.")] = 20,
    fmt: FmtOpt = Format.table,
) -> None:
    """Inverse questions: which padding keeps the size; which kernel/stride/padding/dilation map i to o."""
    typer.echo(solve_output(in_size, out_size, kernel_size, stride, padding, dilation, transposed, limit, fmt))


@guarded
def overlap_command(
    in_size: Annotated[str, typer.Option("--in", "-i", help="Input size: L (1D row) or HxW (2D grid), no channels.")],
    kernel_size: Annotated[str, typer.Option("--kernel-size", "-k", help="Kernel size.")],
    stride: Annotated[str, typer.Option("--stride", "-s", help="Stride.")] = "1",
    padding: Annotated[str, typer.Option("--padding", "-p", help="Crop per side (int or per axis).")] = "0",
    dilation: DilationOpt = None,
    output_padding: OutputPaddingOpt = None,
    fmt: FmtOpt = Format.table,
) -> None:
    """How many input pixels feed each output pixel of a transposed convolution (checkerboard check)."""
    typer.echo(overlap_output(in_size, kernel_size, stride, padding, dilation or "1", output_padding or "0", fmt))


COMMANDS: dict[str, Callable[..., None]] = {
    "types": types_command,
    "compare": compare_command,
    "solve": solve_command,
    "overlap": overlap_command,
}
