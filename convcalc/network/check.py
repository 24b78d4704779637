"""``check``: evaluate specs and compare them with the expectations they state (CI)."""

from __future__ import annotations

import glob
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from convcalc.errors import ConvcalcError
from convcalc.network.evaluate import evaluate_network
from convcalc.network.library import resolve
from convcalc.network.result import EVAL, Expectation, NetworkError
from convcalc.network.spec import load_network, override


@dataclass(frozen=True)
class CheckResult:
    """The outcome of checking one spec file."""

    file: str
    name: str
    expectations: tuple[Expectation, ...] = ()
    error: ConvcalcError | None = None
    seconds: float = 0.0
    """Wall time spent loading and evaluating the spec (JUnit ``time``)."""

    @property
    def status(self) -> str:
        """``pass``, ``fail`` (an expectation does not hold) or ``error`` (the spec is bad input)."""
        if self.error is not None:
            return "error"
        return "fail" if any(not e.ok for e in self.expectations) else "pass"

    @property
    def unchecked(self) -> bool:
        """The spec evaluated but states no expectation: it passes without checking anything."""
        return self.error is None and not self.expectations


def check_file(
    path: str, in_shape: str | None = None, values: Mapping[str, object] | None = None, mode: str = EVAL
) -> CheckResult:
    """Evaluate one spec (a file or a library name; ``in_shape``/``values``: see
    :func:`~convcalc.network.spec.override`) and check its expectations; errors are captured, never raised."""
    start = time.perf_counter()
    try:
        spec = override(load_network(resolve(path)[0]), in_shape, values)
    except ConvcalcError as err:
        return CheckResult(path, path, error=err, seconds=time.perf_counter() - start)
    try:
        result = evaluate_network(spec, mode=mode)
    except NetworkError as err:
        return CheckResult(path, spec.name, tuple(err.partial.expectations), err.cause, time.perf_counter() - start)
    return CheckResult(path, spec.name, tuple(result.expectations), seconds=time.perf_counter() - start)


def expand_paths(patterns: Sequence[str]) -> Iterator[str]:
    """Files matched by each pattern, in order (a pattern without a match is passed through so
    its error names it)."""
    seen: set[str] = set()
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        for path in matches or [pattern]:
            if path not in seen:
                seen.add(path)
                yield path


def check(
    patterns: Sequence[str], in_shape: str | None = None, values: Mapping[str, object] | None = None, mode: str = EVAL
) -> list[CheckResult]:
    """Check every spec matched by ``patterns`` (globs and library names allowed)."""
    return [check_file(path, in_shape, values, mode) for path in expand_paths(patterns)]


def check_exit_code(results: Sequence[CheckResult]) -> int:
    """0 when every spec passes, 2 when any is bad input, else 1."""
    statuses = {r.status for r in results}
    if "error" in statuses:
        return 2
    return 1 if "fail" in statuses else 0
