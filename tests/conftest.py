"""Shared fixtures: drive the CLI in-process, parse its JSON, and a deterministic hypothesis profile.

* ``run_cli(args, input=None, columns=None)`` -> :class:`CliResult` (exit code, stdout, stderr
  separately). It uses ``typer.testing.CliRunner`` on ``convcalc.cli.app``: no TTY, so no colour;
  text tables are full width unless ``columns`` sets ``$COLUMNS``.
* ``cli_json(args, input=None)`` runs with ``--format json``, asserts exit code 0 and an empty
  stderr, and returns the parsed document.

Without torch, the modules whose every test builds a ``torch.nn`` reference (:data:`TORCH_ORACLES`)
are not collected; the other modules skip only their torch tests (``needs_torch`` markers), so the
pure-arithmetic and network tests run anywhere.

Hypothesis: the ``ci`` profile (default) is derandomized (the same examples on every run) and
has no deadline (the torch oracle's first call pays for lazy initialisation). Set
``HYPOTHESIS_PROFILE=dev`` to explore new random examples locally.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from typer.testing import CliRunner

TORCH_ORACLES = ["test_torch_oracle.py", "test_kernels.py", "test_netops.py", "test_library_imagenet.py", "test_library_other.py"]
"""Test modules that define ``torch.nn`` reference models at import time."""
HAS_TORCH = importlib.util.find_spec("torch") is not None
collect_ignore = [] if HAS_TORCH else TORCH_ORACLES


def pytest_report_header() -> str:
    return "torch: found" if HAS_TORCH else f"torch: not installed, not collected: {', '.join(TORCH_ORACLES)}"


settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile("dev", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@dataclass(frozen=True)
class CliResult:
    """What one CLI invocation produced."""

    code: int
    stdout: str
    stderr: str
    exception: BaseException | None

    @property
    def output(self) -> str:
        """stdout and stderr together (for 'no Traceback anywhere' checks)."""
        return self.stdout + self.stderr


def _run(args: Sequence[str], input: str | None = None, columns: int | None = None) -> CliResult:
    from convcalc.cli import app as cli

    # no CONVCALC_DEBUG from the developer's shell: errors must be messages, not raised exceptions;
    # no COLUMNS either (tables fit $COLUMNS when set): full tables unless a test asks for a width
    runner = CliRunner(env={"CONVCALC_DEBUG": None, "COLUMNS": None if columns is None else str(columns)})
    result = runner.invoke(cli.app, [str(a) for a in args], input=input, catch_exceptions=True)
    exception = result.exception if not isinstance(result.exception, SystemExit) else None
    return CliResult(result.exit_code, result.stdout, result.stderr, exception)


def _json(args: Sequence[str], input: str | None = None) -> object:
    result = _run([*args, "--format", "json"], input=input)
    assert result.code == 0, f"convcalc {' '.join(map(str, args))} failed ({result.code}): {result.stderr}{result.exception!r}"
    assert result.stderr == "", result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., CliResult]:
    """``run_cli(["shape", "conv2d", "--in", "3x7x7", ...], input=None, columns=None)``."""
    return _run


@pytest.fixture(scope="session")
def cli_json() -> Callable[..., object]:
    """``cli_json(["layer", "conv2d", ...])`` -> parsed JSON (asserts success)."""
    return _json
