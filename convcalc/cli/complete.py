"""Shell completion of arguments: layer type names, ``--set`` field names, network spec paths.

Typer calls these only while completing (``convcalc --install-completion`` installs the shell
hook); every import happens inside them, so defining them costs the other commands nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

SPEC_SUFFIXES = (".yaml", ".yml")


def type_names(incomplete: str) -> list[tuple[str, str]]:
    """Every layer type whose name starts with ``incomplete`` (case-insensitive), with its summary."""
    from convcalc.kinds.base import all_kinds

    start = incomplete.lower()
    return [(kind.name, kind.summary) for kind in all_kinds() if kind.name.startswith(start)]


def field_assignments(ctx: Any, incomplete: str) -> list[tuple[str, str]]:
    """``name=`` for ``--set``: the fields of the type already on the command line (every known
    field when there is none or it is unknown), those starting with ``incomplete``."""
    import contextlib

    from convcalc.errors import SpecError
    from convcalc.kinds.base import all_kinds, lookup

    params = getattr(ctx, "params", None) or {}
    given = params.get("type_name") or params.get("target") or params.get("what")
    kinds = all_kinds()
    if given:
        with contextlib.suppress(SpecError):  # an unknown type: offer every field
            kinds = [lookup(given)]
    fields = {f.name: f.help for kind in kinds for f in kind.fields}
    return [(f"{name}=", text) for name, text in sorted(fields.items()) if f"{name}=".startswith(incomplete)]


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies under it."""
    from pathlib import Path

    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def spec_paths(incomplete: str) -> list[str]:
    """YAML files and directories starting with ``incomplete``, and the shipped library's specs
    whose name (``res`` -> ``resnet50``) or path starts with it, from any directory."""
    from pathlib import Path

    base = Path(incomplete).expanduser()
    folder = base if incomplete.endswith("/") else base.parent
    stem = "" if incomplete.endswith("/") else base.name
    found: dict[str, None] = {}
    try:
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith(stem) and not entry.name.startswith(".") and (entry.is_dir() or entry.suffix in SPEC_SUFFIXES):
                text = str(folder / entry.name) if str(folder) != "." or incomplete.startswith("./") else entry.name
                found[text + ("/" if entry.is_dir() else "")] = None
    except OSError:
        pass
    from convcalc.network.library import library_specs

    for name, spec in library_specs().items():  # by name (convcalc net resnet50) and by path
        for text in (name, _shown(spec)):
            if text.startswith(incomplete):
                found[text] = None
    return list(found)


def layer_or_spec(incomplete: str) -> list[str | tuple[str, str]]:
    """``run TARGET``: a layer type or a network spec."""
    return [*type_names(incomplete), *spec_paths(incomplete)]


def type_or_rf(incomplete: str) -> list[str | tuple[str, str]]:
    """``draw TYPE|rf``: a layer type, or ``rf`` (a unit's receptive field in a network)."""
    rf: list[str | tuple[str, str]] = [("rf", "the receptive field of one unit of a network spec")]
    return [*(rf if "rf".startswith(incomplete) else []), *type_names(incomplete)]
