"""What other counters report (``totals.peers``, ``--peers``): checked against numbers nobody on the
team wrote — the ResNet-50 totals the tools' users publish, and the tools themselves run on the
modules ``convcalc export`` writes (skipped where a tool is not installed; they are never runtime
dependencies)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from convcalc.interop.peers import PEERS, network_peer_totals, peer_totals
from convcalc.network.evaluate import evaluate_file

ROOT = Path(__file__).resolve().parent.parent

RESNET50_PUBLISHED = {
    "torchinfo": 4_089_238_376,  # torchinfo 1.8.0 total_mult_adds
    "fvcore": 4_111_512_576,  # fvcore 0.1.5 FlopCountAnalysis.total()
    "ptflops": 4_132_436_968,  # ptflops 0.7.5, pytorch backend
    "thop": 4_133_742_592,  # thop 0.1.1 profile()
    "torchscan": 4_111_916_032,  # torchscan 0.2.0
}
"""torchvision ResNet-50 at 1x3x224x224 as the tools print it (issue 11)."""


def _layers(path: Path) -> list[tuple[str, tuple]]:
    return [(row.type, row.stages) for row in evaluate_file(str(path)).rows]


def test_resnet50_reproduces_every_published_peer_total() -> None:
    totals = peer_totals(_layers(ROOT / "specs" / "resnet50.yaml"))
    assert {name: totals[name] for name in RESNET50_PUBLISHED} == RESNET50_PUBLISHED
    assert totals["torch_flop_counter"] == 2 * 4_089_184_256  # torchvision's 4.089 GFLOPS are MACs


def test_net_json_carries_peers(cli_json) -> None:
    data = cli_json(["net", str(ROOT / "specs" / "resnet50.yaml")])
    assert set(data["totals"]["peers"]) == set(PEERS)
    assert data["totals"]["peers"]["thop"] == RESNET50_PUBLISHED["thop"]


def test_net_peers_table_explains_every_tool(run_cli) -> None:
    result = run_cli(["net", str(ROOT / "specs" / "resnet50.yaml"), "--peers"])
    assert result.code == 0
    for name, total in RESNET50_PUBLISHED.items():
        line = next(line for line in result.stdout.splitlines() if line.startswith(name + " "))
        assert f"{total:,}" in line


def test_net_peers_goes_with_the_output_and_html_refuses_it(run_cli, tmp_path: Path) -> None:
    spec = str(ROOT / "specs" / "examples" / "tiny_resnet.yaml")
    target = tmp_path / "net.md"
    written = run_cli(["net", spec, "--format", "markdown", "--peers", "-o", str(target)])
    assert written.code == 0 and written.stdout == ""
    text = target.read_text()
    assert text.index("| conv1 | conv2d |") < text.index("\ntorchinfo ")  # the layer table, then the peers
    refused = run_cli(["net", spec, "--format", "html", "--peers", "-o", str(tmp_path / "r.html")])
    assert refused.code == 2 and "--peers" in refused.stderr
    assert not (tmp_path / "r.html").exists()


def test_flops_peers_flags_the_transposed_overcount(run_cli, cli_json) -> None:
    """A stride-2 transposed conv: torchinfo, thop and torchscan count output positions (x4 here)."""
    args = ["flops", "conv_transpose2d", "--in", "64x16x16", "-o", "32", "-k", "4", "-s", "2", "-p", "1", "--no-bias"]
    data = cli_json([*args, "--peers"])
    macs = 16 * 16 * 64 * 32 * 4 * 4  # input positions x C_in x C_out x k²
    assert data["macs"] == macs
    assert data["peers"]["fvcore"] == macs and data["peers"]["torch_flop_counter"] == 2 * macs
    assert data["peers"]["torchinfo"] == data["peers"]["thop"] == 32 * 32 * 64 * 32 * 4 * 4  # output positions
    lines = run_cli([*args, "--peers"]).stdout.splitlines()
    wrong = {lines[i - 1].split()[0] for i, line in enumerate(lines) if "WRONG" in line and "transposed" in line}
    assert wrong == {"torchinfo", "thop", "torchscan"}


def _wrong_notes(stdout: str) -> set[tuple[str, str]]:
    """``(tool, note)`` of every WRONG line of a peers table (the note sits under its tool's row)."""
    lines = stdout.splitlines()
    tool = ""
    notes = set()
    for line in lines:
        if line and not line.startswith(" ") and len(line.split()) > 1:
            tool = line.split()[0]
        if "WRONG: " in line:
            notes.add((tool, line.split("WRONG: ", 1)[1]))
    return notes


def test_wrong_notes_name_only_what_the_network_has(run_cli) -> None:
    """ResNet-18 has no transposed conv and no layer norm: no note about them; it has ReLUs and
    3x3 max pooling, which ptflops counts twice and torchscan as 3 instead of 9. A 1x1 conv
    alone draws no note at all."""
    resnet = _wrong_notes(run_cli(["net", str(ROOT / "specs" / "resnet18.yaml"), "--peers"]).stdout)
    assert {tool for tool, _ in resnet} == {"ptflops", "torchscan"}
    assert not any("transposed" in note or "subclass" in note for _, note in resnet)
    dcgan = _wrong_notes(run_cli(["net", str(ROOT / "specs" / "dcgan_generator.yaml"), "--peers"]).stdout)
    assert {tool for tool, note in dcgan if "transposed" in note} == {"torchinfo", "thop", "torchscan"}
    pointwise = run_cli(["flops", "conv2d", "--in", "8x5x5", "-o", "4", "-k", "1", "--peers"])
    assert pointwise.code == 0 and "torchinfo" in pointwise.stdout and not _wrong_notes(pointwise.stdout)


AGREEMENT_SPECS = [
    ROOT / "specs" / "examples" / name
    for name in ("tiny_resnet.yaml", "dilated_stack.yaml", "unet_small.yaml", "inverted_residual_se.yaml")
] + [ROOT / "specs" / "dcgan_generator.yaml", ROOT / "specs" / "textcnn.yaml"] + sorted((ROOT / "tests" / "data").glob("export_*.yaml"))


@pytest.mark.parametrize("tool", list(PEERS))
@pytest.mark.parametrize("path", AGREEMENT_SPECS, ids=lambda p: p.stem)
def test_prediction_equals_what_the_tool_reports(tool: str, path: Path) -> None:
    pytest.importorskip("torch")
    from convcalc.interop.peer_tools import RUNNERS, load_module, run
    from convcalc.interop.torch_export import export_pytorch

    package = RUNNERS[tool][0]
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed (it is in the test extra: pip install -e '.[test]')")
    result = evaluate_file(str(path), batch=1)
    module = load_module(export_pytorch(result), result.name)
    predicted = network_peer_totals(result)[tool]  # eval mode, as build() returns the module
    assert run(tool, module.build(), module.INPUT_SHAPE) == predicted


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_peers_table_and_json_count_the_rows_that_run_in_the_mode(mode: str, run_cli, cli_json) -> None:
    """Training-only heads run only in ``train()``: FlopCounterMode on the exported module in that
    mode is the number both ``--peers`` and ``totals.peers`` give for ``--mode``."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from convcalc.interop.peer_tools import load_module
    from convcalc.interop.torch_export import export_pytorch

    path = str(ROOT / "tests" / "data" / "export_aux.yaml")
    module = load_module(export_pytorch(evaluate_file(path)), "export_aux")
    model = module.build().train(mode == "train")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(2, *module.INPUT_SHAPE))
    flops = counter.get_total_flops()
    args = ["net", path, "--mode", mode, "--batch", "2"]
    assert cli_json(args)["totals"]["peers"]["torch_flop_counter"] == flops
    table = run_cli([*args, "--peers"]).stdout.splitlines()
    assert f"{flops:,}" in next(line for line in table if line.startswith("torch_flop_counter "))
