"""The ``net`` and ``check`` commands (registered on the app by :func:`register`).

Thin typer wrappers: evaluation lives in :mod:`convcalc.network`, output in
:mod:`convcalc.render_net`, error messages and exit codes in :func:`convcalc.cli.guarded`.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from convcalc import cli


class CheckFormat(str, Enum):
    text = "text"
    github = "github"
    junit = "junit"


SpecArg = Annotated[str, typer.Argument(metavar="SPEC", help="Network spec (YAML); '-' reads standard input.")]
SpecsArg = Annotated[list[str], typer.Argument(metavar="SPEC...", help="Spec files or globs such as 'specs/*.yaml'.")]
CheckFmtOpt = Annotated[CheckFormat, typer.Option("--format", "-f", help="text, github (Actions annotations) or junit (XML).")]
DepthOpt = Annotated[
    Optional[int],
    typer.Option("--depth", min=1, help="Fold blocks nested deeper than N levels into one row.", show_default=False),
]
BatchOpt = Annotated[
    Optional[int],
    typer.Option(
        "--batch", "-b", min=1, help="Batch size (default: the spec's): scales MACs and activations.", show_default=False
    ),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show Python tracebacks on errors.")]
PeersOpt = Annotated[
    bool, typer.Option("--peers", help="Also print what torchinfo, fvcore, ptflops, thop, torchscan, FlopCounterMode report.")
]


class ExportTarget(str, Enum):
    pytorch = "pytorch"


ToOpt = Annotated[ExportTarget, typer.Option("--to", help="Target framework.")]
OutputOpt = Annotated[
    Optional[str], typer.Option("--output", "-o", help="Write to this file (default: standard output).", show_default=False)
]


def register(app: typer.Typer) -> None:
    """Add ``net``, ``check`` and ``export`` to ``app``."""
    app.command("export")(export_command)

    @app.command("net")
    def net_command(
        spec: SpecArg,
        fmt: cli.FmtOpt = cli.Fmt.table,
        depth: DepthOpt = None,
        batch: BatchOpt = None,
        peers: PeersOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        """Evaluate a network spec: per-layer shapes, params, MACs, receptive fields; totals and breakdowns.

        On an error the table is printed up to the failing layer, then the error (exit 2).
        --peers adds each popular counter's total (JSON: always in totals.peers) and how it is built.
        """
        cli.STATE["debug"] = cli.STATE["debug"] or debug

        def body() -> None:
            from convcalc.network import NetworkError, evaluate_file
            from convcalc.render_net import render_network

            try:
                result = evaluate_file(spec, batch=batch)
            except NetworkError as err:
                if err.partial.rows:
                    typer.echo(render_network(err.partial, fmt.value, depth))
                raise err.cause from None
            typer.echo(render_network(result, fmt.value, depth))
            if peers and fmt.value != "json":
                from convcalc.interop.peers import peer_totals, render_peers

                totals = peer_totals([(row.type, row.stages) for row in result.rows], result.batch)
                typer.echo("\n" + render_peers(totals, result.batch * result.totals().macs, result.batch))

        cli.guarded(body)

    @app.command("check")
    def check_command(specs: SpecsArg, fmt: CheckFmtOpt = CheckFormat.text, debug: DebugOpt = False) -> None:
        """Check the expectations written in network specs (CI): exit 0 all hold, 1 any fails, 2 bad input."""
        cli.STATE["debug"] = cli.STATE["debug"] or debug

        def body() -> None:
            from convcalc.network import check, check_exit_code
            from convcalc.render_net import render_check

            results = check(specs)
            typer.echo(render_check(results, fmt.value))
            code = check_exit_code(results)
            if code:
                raise typer.Exit(code)

        cli.guarded(body)


def export_command(spec: SpecArg, to: ToOpt = ExportTarget.pytorch, output: OutputOpt = None, debug: DebugOpt = False) -> None:
    """Write the network as code: one standalone PyTorch module (nn.Module class, build(), INPUT_SHAPE).

    Module paths equal the spec's layer paths; a layer type PyTorch cannot express is an error (exit 2).
    """
    cli.STATE["debug"] = cli.STATE["debug"] or debug

    def body() -> None:
        from convcalc.errors import SpecError
        from convcalc.interop.torch_export import export_pytorch
        from convcalc.network import NetworkError, evaluate_file

        try:
            result = evaluate_file(spec)
        except NetworkError as err:
            raise err.cause from None
        source = export_pytorch(result)
        if output is None:
            typer.echo(source, nl=False)
            return
        try:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(source)
        except OSError as err:
            raise SpecError(f"cannot write '{output}': {err.strerror}.", hint="Check the path and permissions.") from None
        typer.echo(f"wrote {output} ({source.count(chr(10))} lines, {len(result.rows)} layers)", err=True)

    cli.guarded(body)
