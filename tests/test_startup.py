"""The arithmetic path stays light: single-layer commands never import numpy, torch, rich or yaml.

Each check runs in a fresh interpreter (this test process has torch loaded already): a ``python -c``
script imports ``convcalc.cli.app``, invokes the app, and reports which heavy packages are in
``sys.modules`` at exit; ``python -X importtime`` independently lists every module imported.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = ("numpy", "torch", "rich", "yaml")
SHAPE = ["shape", "conv2d", "--in", "3x224x224", "-o", "64", "-k", "7", "-s", "2", "-p", "3"]

PROBE = """
import sys
from convcalc.cli.app import app
try:
    app({args!r})
except SystemExit as exc:
    code = exc.code or 0
else:
    code = 0
loaded = sorted(m for m in {heavy!r} if m in sys.modules)
sys.stderr.write("HEAVY=" + ",".join(loaded) + "\\n")
sys.exit(code)
"""


def run_probe(
    args: list[str], *flags: str, stdin: str | None = None, watch: tuple[str, ...] = HEAVY
) -> subprocess.CompletedProcess[str]:
    """Run the app in a fresh interpreter; its stderr ends with which of the ``watch`` modules were loaded."""
    env = {k: v for k, v in os.environ.items() if k != "CONVCALC_DEBUG"}
    return subprocess.run(
        [sys.executable, *flags, "-c", PROBE.format(args=args, heavy=watch)],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
        env=env,
        check=False,
    )


def heavy_loaded(proc: subprocess.CompletedProcess[str]) -> list[str]:
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY=")]
    return [m for m in line.removeprefix("HEAVY=").split(",") if m]


def imported_modules(importtime_stderr: str) -> set[str]:
    """Module names from ``-X importtime`` lines: ``import time: self | cumulative | name``."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


def test_shape_command_imports_nothing_heavy():
    proc = run_probe(SHAPE)
    assert proc.returncode == 0, proc.stderr
    assert "64x112x112" in proc.stdout  # (224 + 6 - 7) // 2 + 1 = 112: the command really ran
    assert heavy_loaded(proc) == []


def test_importtime_confirms_it():
    proc = run_probe(SHAPE, "-X", "importtime")
    assert proc.returncode == 0, proc.stderr
    modules = imported_modules(proc.stderr)
    assert "convcalc.cli" in modules and "typer" in modules  # the probe sees real imports
    offenders = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert offenders == [], offenders
    assert not any(m.startswith("convcalc.interop") for m in modules)  # the peer rules load only with --peers


def test_peers_load_only_when_asked():
    proc = run_probe([*SHAPE, "--peers"], "-X", "importtime")
    assert proc.returncode == 0, proc.stderr
    assert "torchinfo" in proc.stdout  # the peers table was printed
    assert "convcalc.interop.peers" in imported_modules(proc.stderr)
    assert heavy_loaded(proc) == []  # the rules are arithmetic: no tool, no torch


def test_pictures_and_the_html_report_stay_off_the_arithmetic_path():
    watch = ("convcalc.engine", "convcalc.draw", "convcalc.draw.svg", "convcalc.render.html", "convcalc.render.network")
    proc = run_probe(SHAPE, watch=watch)
    assert proc.returncode == 0, proc.stderr
    assert heavy_loaded(proc) == ["convcalc.engine"]  # the probe sees convcalc's own modules


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "markdown"])
@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["params", "separable2d", "--in", "16x7x7", "-o", "32", "-k", "3"], id="params"),
        pytest.param(["flops", "conv_transpose2d", "--in", "4x7x7", "-o", "8", "-k", "3", "-s", "2"], id="flops"),
        pytest.param(["rf", "conv2d", "--in", "3x32x32", "-o", "8", "-k", "3", "-d", "2"], id="rf"),
        pytest.param(["layer", "p3d", "--in", "4x5x9x9", "-o", "4", "-k", "3", "-p", "same", "--explain"], id="layer"),
    ],
)
def test_other_single_layer_commands_stay_light(args, fmt):
    proc = run_probe([*args, "--format", fmt])
    assert proc.returncode == 0, proc.stderr
    assert heavy_loaded(proc) == []


def test_errors_stay_light():
    proc = run_probe(["shape", "conv2d", "--in", "3x7x7", "-o", "4", "-k", "9"])
    assert proc.returncode == 2
    assert heavy_loaded(proc) == []


def test_a_spec_file_needs_yaml_but_not_numpy():
    spec = "type: conv2d\ninput: 3x224x224\nout_channels: 64\nkernel_size: 7\nstride: 2\npadding: 3\n"
    proc = run_probe(["shape", "--spec", "-"], stdin=spec)
    assert proc.returncode == 0, proc.stderr
    assert "64x112x112" in proc.stdout
    assert heavy_loaded(proc) == ["yaml"]
