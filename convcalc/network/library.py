"""The reference library: the specs shipped with convcalc, addressable by name (``convcalc net resnet50``).

The files live once, in the repository's ``specs/`` folder; the wheel installs them as the package
data ``convcalc/library/`` (``setup.py`` maps that package to ``specs/``). A source checkout (or an
editable install) reads ``specs/`` directly.
"""

from __future__ import annotations

from pathlib import Path

from convcalc.errors import SpecError, did_you_mean

_PACKAGE = Path(__file__).resolve().parent.parent


def library_dir() -> Path | None:
    """Where the library is: ``convcalc/library`` in an installed wheel, else ``specs/`` beside the package."""
    for candidate in (_PACKAGE / "library", _PACKAGE.parent / "specs"):
        if (candidate / "resnet50.yaml").is_file():
            return candidate
    return None


def library_specs() -> dict[str, Path]:
    """Name -> file of every top-level library spec (``specs/include/``, examples and layers excluded)."""
    root = library_dir()
    return {} if root is None else {p.stem: p for p in sorted(root.glob("*.yaml"))}


def is_name(target: str) -> bool:
    """Whether ``target`` reads as a library name rather than a path (no folder, no extension)."""
    return target != "-" and "/" not in target and "\\" not in target and not target.endswith((".yaml", ".yml"))


def resolve(target: str) -> tuple[str, str | None]:
    """The file ``target`` denotes and, when a name was looked up, a note saying which file was used.

    A file that exists wins (``resnet50`` or ``resnet50.yaml`` in the working folder), then the
    library's spec of that name; anything else is returned as is (its error names it).
    """
    if not is_name(target):
        return target, None
    library = library_specs()
    for local in (Path(target), Path(f"{target}.yaml")):
        if local.is_file():
            shadowed = f" (not the library's {target})" if target in library else ""
            return str(local), f"using the local file {local}{shadowed}"
    if target in library:
        return str(library[target]), f"using the library spec {target} ({library[target]})"
    raise SpecError(
        f"'{target}' is neither a file nor a library spec.{did_you_mean(target, list(library))}",
        hint="'convcalc net --list' lists the library; give a path for your own spec.",
    )
