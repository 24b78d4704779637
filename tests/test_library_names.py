"""The reference library by name (``convcalc net resnet50``, ``net --list``), shipped in the wheel,
and ``--in`` / ``--set`` on net, check and run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from convcalc.network.library import library_dir, library_specs

ROOT = Path(__file__).resolve().parent.parent


def test_the_library_is_the_specs_folder_in_a_checkout() -> None:
    assert library_dir() == ROOT / "specs"
    assert set(library_specs()) == {p.stem for p in (ROOT / "specs").glob("*.yaml")}


def test_net_by_name_says_which_file_was_used(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    by_name = run_cli(["net", "resnet18", "-f", "json"])
    by_path = run_cli(["net", str(ROOT / "specs" / "resnet18.yaml"), "-f", "json"])
    assert by_name.code == 0
    assert json.loads(by_name.stdout)["totals"] == json.loads(by_path.stdout)["totals"]
    assert f"using the library spec resnet18 ({ROOT / 'specs' / 'resnet18.yaml'})" in by_name.stderr
    # a local file of the same name wins, and the note says so
    (tmp_path / "resnet18.yaml").write_text("input: 3x8x8\nlayers: [{type: conv2d, out_channels: 2, kernel_size: 1}]\n")
    local = run_cli(["net", "resnet18", "-f", "json"])
    assert json.loads(local.stdout)["totals"]["params"] == 3 * 2 + 2
    assert "using the local file resnet18.yaml (not the library's resnet18)" in local.stderr


def test_an_unknown_name_suggests_the_closest(run_cli) -> None:
    result = run_cli(["net", "resnet5"])
    assert result.code == 2
    assert "'resnet5' is neither a file nor a library spec. Did you mean 'resnet50'?" in result.output


def test_net_list_has_every_library_spec_with_its_totals(run_cli) -> None:
    from convcalc.network.evaluate import evaluate_file

    listed = json.loads(run_cli(["net", "--list", "-f", "json"]).stdout)
    assert [e["name"] for e in listed] == sorted(library_specs())
    by_name = {e["name"]: e for e in listed}
    resnet = by_name["resnet50"]
    assert (resnet["input"], resnet["params"], resnet["macs"]) == ("3x224x224", 25_557_032, 4_089_184_256)  # torchvision
    totals = evaluate_file(str(ROOT / "specs" / "unet.yaml")).totals()
    assert (by_name["unet"]["params"], by_name["unet"]["macs"]) == (totals.params, totals.macs)
    assert Path(str(by_name["unet"]["source"])) == ROOT / "specs" / "unet.yaml"


def test_in_changes_the_input_and_skips_what_no_longer_applies(run_cli) -> None:
    doc = json.loads(run_cli(["net", "resnet50", "--in", "3x448x448", "-f", "json"]).stdout)
    assert doc["output_shape"] == [1000] or tuple(doc["output_shape"]) == (1000,)
    # the convolutions' MACs scale with the positions: 4x the positions, 4x the conv MACs; params stay
    base = json.loads(run_cli(["net", "resnet50", "-f", "json"]).stdout)
    assert doc["totals"]["params"] == base["totals"]["params"] == 25_557_032
    fc = 2048 * 1000
    assert doc["totals"]["macs"] - fc == 4 * (base["totals"]["macs"] - fc)
    status = {e["what"]: (e["ok"], e["skipped"]) for e in doc["expectations"]}
    assert status["params"] == (True, False)
    assert status["macs"] == (True, True)
    checked = run_cli(["check", "resnet50", "--in", "3x448x448"])
    assert checked.code == 0
    assert "PASS  resnet50: 1 expectation(s) hold, " in checked.stdout and " skipped" in checked.stdout


def test_set_overrides_a_variable_and_skips_every_expectation(run_cli) -> None:
    """DeepLab's head on a 9x9 map (the torch comparison in test_library_other.py builds the same)."""
    doc = json.loads(run_cli(["net", "deeplab_aspp", "--in", "2048x9x9", "--set", "size=9", "-f", "json"]).stdout)
    assert tuple(doc["output_shape"]) == (21, 9, 9)
    assert all(e["skipped"] for e in doc["expectations"])
    assert doc["totals"]["params"] == 16_130_837  # no parameter depends on the map size


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "sise=9"), "the spec has no top-level variable 'sise'. Did you mean 'size'?"),
        (("--in", "2048x9"), "--in 2048x9 has 2 sizes; the spec's input 2048x33x33 has 3"),
        (("--set", "size"), "--set expects name=value"),
    ],
)
def test_bad_overrides_are_refused(run_cli, args: tuple[str, ...], message: str) -> None:
    result = run_cli(["net", "deeplab_aspp", *args])
    assert result.code == 2
    assert message in result.output


def test_run_takes_a_library_name_and_overrides(run_cli) -> None:
    pytest.importorskip("numpy")
    result = run_cli(["run", "dcgan_generator", "--set", "unused=1", "--repeats", "1", "--warmup", "0"])
    assert result.code == 2 and "no top-level variable 'unused'" in result.output
    ok = run_cli(["run", str(ROOT / "specs" / "examples" / "dilated_stack.yaml"), "--in", "1x16x16", "--repeats", "1", "--warmup", "0", "-f", "json"])
    assert ok.code == 0, ok.output



def test_draw_rf_takes_a_library_name(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The picture and the terminal text by name are those of the library file by path."""
    monkeypatch.chdir(tmp_path)
    spec = str(ROOT / "specs" / "resnet18.yaml")
    for by_name, by_path in (
        (run_cli(["draw", "rf", "resnet18", "--layer", "layer1", "-o", "byname.svg"]),
         run_cli(["draw", "rf", spec, "--layer", "layer1", "-o", "bypath.svg"])),
        (run_cli(["draw", "rf", "resnet18", "--layer", "layer2", "--unit", "3,4"]),
         run_cli(["draw", "rf", spec, "--layer", "layer2", "--unit", "3,4"])),
    ):
        assert by_name.code == by_path.code == 0, by_name.output
        assert f"using the library spec resnet18 ({spec})" in by_name.stderr
        assert "using the library spec" not in by_path.stderr
        assert by_name.stdout == by_path.stdout
    assert (tmp_path / "byname.svg").read_bytes() == (tmp_path / "bypath.svg").read_bytes()
    assert "unit (3,4) of 'layer2.1.relu'" in by_name.stdout


def test_draw_rf_refuses_an_unknown_name_with_a_suggestion(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli(["draw", "rf", "resnet5", "--layer", "layer1", "-o", "rf.svg"])
    assert result.code == 2
    assert "'resnet5' is neither a file nor a library spec. Did you mean 'resnet50'?" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "rf.svg").exists()


@pytest.mark.skipif(os.environ.get("CONVCALC_SKIP_WHEEL") == "1", reason="wheel build disabled")
def test_the_wheel_ships_the_library(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "-w", str(tmp_path), "--no-deps", "--no-build-isolation", "-q"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("convcalc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"convcalc/library/{p.name}" for p in (ROOT / "specs").glob("*.yaml")} <= names
    assert "convcalc/library/schema.json" in names
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    found = subprocess.run(
        [sys.executable, "-c", "from convcalc.network.library import library_dir; print(library_dir())"],
        env={**os.environ, "PYTHONPATH": str(unpacked)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(found.stdout.strip()) == unpacked / "convcalc" / "library"
