"""Pictures: every file parses, and what it draws equals the arithmetic and brute force.

* Layer pictures (``convcalc draw``): the SVG parses with ``xml.etree``; the cells counted by
  ``data-role`` equal the engine's shapes (output cells = output positions; input cells = input
  pixels; inserted zeros = ``(i-1)·s + 1 - i`` per the zero-insertion definition); one frame per
  output position with ``prod(k)`` kernel cells; each frame's footprint equals the window found
  by sliding along the padded axis (``tests/test_bruteforce.py``'s ``window_starts``) or, for a
  transposed conv, the set of input pixels that reach that output by the definition
  ``o = i·s + t·d - p``; ``--grid`` and ``--overlap`` numbers equal enumerated counts.
* Receptive-field path counts equal an explicit enumeration of every path (depth-first, no
  memo) through small generated networks whose connections are written here from the layer
  definitions, not taken from convcalc.
* The HTML report parses with ``html.parser`` and references no external URL.
"""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from convcalc.draw.geometry import MAX_CELLS
from convcalc.draw.layer import Options, draw_layer
from convcalc.draw.paths import count_paths
from convcalc.draw.terminal import render_terminal, use_colour
from convcalc.engine import LayerResult, evaluate_layer
from convcalc.errors import ConvcalcError, LimitError
from convcalc.network.evaluate import evaluate_network
from convcalc.network.result import NetResult
from convcalc.network.spec import parse_network
from convcalc.parse.layer import parse_layer

ROOT = Path(__file__).resolve().parent.parent


def layer(kind: str, shape: Sequence[int], **fields: object) -> LayerResult:
    return evaluate_layer(parse_layer({"type": kind, "out_channels": shape[0], **fields}), tuple(shape))


def picture(result: LayerResult, mode: str = "animate", step: int = 1) -> ET.Element:
    return ET.fromstring(draw_layer(result, Options(mode, step)))


def with_role(root: ET.Element, role: str) -> list[ET.Element]:
    return [e for e in root.iter() if e.get("data-role") == role]


def coord(element: ET.Element, key: str = "data-coord") -> tuple[int, ...]:
    return tuple(int(v) for v in (element.get(key) or "").split(","))


def frames(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter() if e.get("class") == "frame"]


try:  # the brute-force window enumeration of tests/test_bruteforce.py (which imports torch)
    from test_bruteforce import window_starts as _brute_window_starts
except ImportError:  # pragma: no cover - torch missing
    _brute_window_starts = None


def window_starts(size: int, kernel: int, stride: int, before: int, after: int, dilation: int) -> list[int]:
    if _brute_window_starts is None:
        pytest.skip("tests/test_bruteforce.py needs torch")
    starts: list[int] = _brute_window_starts(size, kernel, stride, before, after, dilation)
    return starts


# --------------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------------


@st.composite
def direct(draw: st.DrawFn) -> dict[str, object]:
    rank = draw(st.integers(1, 2))
    size = [draw(st.integers(1, 7)) for _ in range(rank)]
    kernel = [draw(st.integers(1, 4)) for _ in range(rank)]
    dilation = [draw(st.integers(1, 3)) for _ in range(rank)]
    pads = [(draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(rank)]
    stride = [draw(st.integers(1, 3)) for _ in range(rank)]
    assume(all(n + a + b >= d * (k - 1) + 1 for n, k, (a, b), d in zip(size, kernel, pads, dilation, strict=True)))
    return {"rank": rank, "size": size, "kernel": kernel, "stride": stride, "pads": pads, "dilation": dilation}


@st.composite
def transposed(draw: st.DrawFn) -> dict[str, object]:
    rank = draw(st.integers(1, 2))
    size = [draw(st.integers(1, 5)) for _ in range(rank)]
    kernel = [draw(st.integers(1, 4)) for _ in range(rank)]
    dilation = [draw(st.integers(1, 3)) for _ in range(rank)]
    stride = [draw(st.integers(1, 3)) for _ in range(rank)]
    # padding crops at most d(k-1) per side, so the equivalent direct conv never crops the input
    crops = [draw(st.integers(0, d * (k - 1))) for k, d in zip(kernel, dilation, strict=True)]
    extra = [draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True)]
    assume(all((n - 1) * s - 2 * p + d * (k - 1) + q >= 0 for n, s, p, d, k, q in zip(size, stride, crops, dilation, kernel, extra, strict=True)))
    return {"rank": rank, "size": size, "kernel": kernel, "stride": stride, "crops": crops, "dilation": dilation, "op": extra}


def direct_layer(c: dict[str, object]) -> LayerResult:
    rank = c["rank"]
    return layer(
        f"conv{rank}d",
        (1, *c["size"]),
        kernel_size=c["kernel"],
        stride=c["stride"],
        padding=[list(p) for p in c["pads"]],
        dilation=c["dilation"],
    )


def transposed_layer(c: dict[str, object]) -> LayerResult:
    return layer(
        f"conv_transpose{c['rank']}d",
        (1, *c["size"]),
        kernel_size=c["kernel"],
        stride=c["stride"],
        padding=c["crops"],
        dilation=c["dilation"],
        output_padding=c["op"],
    )


# --------------------------------------------------------------------------------------------
# Layer pictures: counts by role equal the arithmetic
# --------------------------------------------------------------------------------------------


@given(direct())
@settings(max_examples=60)
@example({"rank": 2, "size": [5, 5], "kernel": [3, 3], "stride": [2, 2], "pads": [(1, 1), (1, 1)], "dilation": [1, 1]})
def test_direct_conv_cells_equal_the_arithmetic(c: dict[str, object]) -> None:
    result = direct_layer(c)
    out = result.output_shape[1:]
    root = picture(result)
    size, pads, kernel = c["size"], c["pads"], c["kernel"]
    assert len(with_role(root, "output")) == math.prod(out)
    assert len(with_role(root, "input")) == math.prod(size)
    padded = math.prod(n + a + b for n, (a, b) in zip(size, pads, strict=True))
    assert len(with_role(root, "padding")) == padded - math.prod(size)
    assert not with_role(root, "inserted-zero")
    shown = frames(root)
    assert len(shown) == math.prod(out)
    for frame in shown:
        assert len(with_role(frame, "kernel")) == math.prod(kernel)
        assert len(with_role(frame, "active")) == 1


@given(direct())
@settings(max_examples=40)
def test_every_footprint_equals_the_brute_force_window(c: dict[str, object]) -> None:
    result = direct_layer(c)
    root = picture(result)
    size, kernel, stride, pads, dilation = (c[k] for k in ("size", "kernel", "stride", "pads", "dilation"))
    starts = [
        window_starts(n, k, s, a, b, d)
        for n, k, s, (a, b), d in zip(size, kernel, stride, pads, dilation, strict=True)
    ]
    expected_order = list(itertools.product(*(range(len(s)) for s in starts)))
    shown = frames(root)
    assert [coord(f, "data-out") for f in shown] == expected_order  # row-major animation order
    for frame in shown:
        out = coord(frame, "data-out")
        taps = itertools.product(*(range(k) for k in kernel))
        # drawn coordinates start at the first padding cell: input coordinate + p_before
        want = [
            tuple(starts[a][out[a]] + t[a] * dilation[a] + pads[a][0] for a in range(len(out)))
            for t in taps
        ]
        assert [coord(k) for k in with_role(frame, "kernel")] == want


@given(transposed())
@settings(max_examples=60)
@example({"rank": 2, "size": [2, 2], "kernel": [3, 3], "stride": [2, 2], "crops": [0, 0], "dilation": [1, 1], "op": [0, 0]})
@example({"rank": 1, "size": [3], "kernel": [3], "stride": [2], "crops": [1], "dilation": [1], "op": [1]})
@example({"rank": 1, "size": [3], "kernel": [2], "stride": [1], "crops": [2], "dilation": [3], "op": [2]})
def test_transposed_conv_cells_equal_the_arithmetic(c: dict[str, object]) -> None:
    result = transposed_layer(c)
    out = result.output_shape[1:]
    root = picture(result)
    size, stride, kernel = c["size"], c["stride"], c["kernel"]
    assert len(with_role(root, "output")) == math.prod(out)
    assert len(with_role(root, "input")) == math.prod(size)
    stretched = math.prod((n - 1) * s + 1 for n, s in zip(size, stride, strict=True))
    assert len(with_role(root, "inserted-zero")) == stretched - math.prod(size)
    assert not with_role(root, "cropped")
    shown = frames(root)
    assert len(shown) == math.prod(out)
    assert all(len(with_role(f, "kernel")) == math.prod(kernel) for f in shown)


@given(transposed())
@settings(max_examples=40)
def test_transposed_footprints_hold_exactly_the_contributing_inputs(c: dict[str, object]) -> None:
    """Under output o's window lie exactly the inputs i with o = i·s + t·d - p_before (some t)."""
    result = transposed_layer(c)
    root = picture(result)
    size, kernel, stride, crops, dilation = (c[k] for k in ("size", "kernel", "stride", "crops", "dilation"))
    cells = {coord(e): e for e in root.iter() if e.get("data-role") in ("input", "padding", "inserted-zero")}
    for frame in frames(root):
        out = coord(frame, "data-out")
        seen = sorted(coord(cells[coord(k)], "data-src") for k in with_role(frame, "kernel") if cells[coord(k)].get("data-src"))
        want = sorted(
            pixel
            for pixel in itertools.product(*(range(n) for n in size))
            for taps in itertools.product(*(range(k) for k in kernel))
            if all(
                pixel[a] * stride[a] + taps[a] * dilation[a] - crops[a] == out[a]
                for a in range(len(out))
            )
        )
        assert seen == want


@given(transposed())
@settings(max_examples=30)
def test_overlap_numbers_count_the_contributions(c: dict[str, object]) -> None:
    result = transposed_layer(c)
    root = picture(result, "overlap")
    size, kernel, stride, crops, dilation = (c[k] for k in ("size", "kernel", "stride", "crops", "dilation"))
    for cell in with_role(root, "output"):
        out = coord(cell)
        count = sum(
            1
            for pixel in itertools.product(*(range(n) for n in size))
            for taps in itertools.product(*(range(k) for k in kernel))
            if all(pixel[a] * stride[a] + taps[a] * dilation[a] - crops[a] == out[a] for a in range(len(out)))
        )
        assert int(cell.get("data-contributions") or -1) == count


@given(direct())
@settings(max_examples=30)
def test_grid_numbers_count_the_windows_reading_each_cell(c: dict[str, object]) -> None:
    result = direct_layer(c)
    root = picture(result, "grid")
    size, kernel, stride, pads, dilation = (c[k] for k in ("size", "kernel", "stride", "pads", "dilation"))
    per_axis = []
    for n, k, s, (a, b), d in zip(size, kernel, stride, pads, dilation, strict=True):
        hits = [0] * (n + a + b)
        for start in window_starts(n, k, s, a, b, d):
            for t in range(k):
                hits[start + t * d + a] += 1
        per_axis.append(hits)
    drawn = [e for e in root.iter() if e.get("data-uses") is not None]
    assert len(drawn) == math.prod(len(h) for h in per_axis)
    for cell in drawn:
        where = coord(cell)
        assert int(cell.get("data-uses") or -1) == math.prod(per_axis[a][where[a]] for a in range(len(where)))


def test_three_d_draws_depth_slices_with_every_cell() -> None:
    result = layer("conv3d", (1, 3, 4, 4), kernel_size=[3, 2, 2], padding=[1, 0, 0], stride=[1, 2, 1])
    root = picture(result, "step", 2)
    assert len(with_role(root, "output")) == math.prod(result.output_shape[1:])
    assert len(with_role(root, "input")) == 3 * 4 * 4
    assert len(with_role(root, "padding")) == 5 * 4 * 4 - 3 * 4 * 4
    (frame,) = frames(root)
    assert frame.get("data-out") == "0,0,1"  # step 2 of a 3x2x3 output, row-major
    assert len(with_role(frame, "kernel")) == 3 * 2 * 2


@pytest.mark.parametrize(
    ("kind", "shape", "fields", "window_stages", "bands"),
    [
        ("separable2d", (3, 6, 6), {"out_channels": 8, "kernel_size": 3}, 2, 3 + 1),
        ("spatial_separable2d", (2, 5, 5), {"kernel_size": 3}, 2, 1 + 1),
        ("flattened2d", (2, 5, 5), {"kernel_size": 3}, 3, 1 + 2 + 2),
        ("p3d", (2, 3, 5, 5), {"kernel_size": 3, "padding": 1, "variant": "C"}, 2, 1 + 1 + 2),
        ("conv2plus1d", (2, 3, 5, 5), {"kernel_size": 3, "mid_channels": 3}, 2, 1 + 1),
        ("conv2d", (4, 5, 5), {"kernel_size": 3, "groups": 2}, 1, 2),
        ("shuffle_grouped2d", (6, 5, 5), {"kernel_size": 3, "groups": 3}, 1, 3),
    ],
    ids=["separable", "spatially-separable", "flattened", "p3d-C", "r2plus1d", "grouped", "shuffle-grouped"],
)
def test_composite_types_draw_a_panel_per_stage_and_groups_as_blocks(
    kind: str, shape: tuple[int, ...], fields: dict[str, object], window_stages: int, bands: int
) -> None:
    result = layer(kind, shape, **fields)
    root = picture(result, "step", 1)
    assert len(frames(root)) == window_stages  # one static frame per window stage
    assert len(with_role(root, "group")) == bands  # one block per group of every stage input
    channels = [result.input_shape[0], *(s.output[0] for s in result.stages)]
    assert len(with_role(root, "channel")) == sum(channels)
    if kind == "shuffle_grouped2d":  # a line per channel, sent to b·g + a
        assert len(with_role(root, "connection")) >= 6


def test_pictures_refuse_absurd_sizes_and_say_what_to_do(run_cli: Callable[..., object]) -> None:
    big = layer("conv2d", (1, 100, 100), kernel_size=3)
    with pytest.raises(LimitError, match=f"limit {MAX_CELLS:,}"):
        draw_layer(big, Options())
    result = run_cli(["draw", "conv2d", "--in", "1x100x100", "-k", "3", "-o", "/dev/null"])
    assert result.code == 2
    assert "smaller input" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["draw", "conv2d", "--in", "1x5x5", "-k", "3", "--step", "10"], "steps 1 to 9"),
        (["draw", "conv2d", "--in", "1x5x5", "-k", "3", "--overlap"], "--grid"),
        (["draw", "conv2d", "--in", "1x5x5", "-k", "3", "--grid", "--step", "2"], "exclude each other"),
        (["draw", "relu", "--in", "1x5x5"], "no sliding window"),
        (["draw", "rf", "specs/resnet18.yaml"], "needs a network spec and a layer"),
        (["draw", "rf", "specs/resnet18.yaml", "--layer", "layer9"], "no layer or block named 'layer9'"),
        (["draw", "rf", "specs/resnet18.yaml", "--layer", "fc"], "global context"),
        (["draw", "rf", "specs/resnet18.yaml", "--layer", "conv1", "--unit", "200,3"], "is not a position"),
        (["draw", "conv2d", "--in", "1x5x5", "-k", "3", "-o", "/nonexistent/dir/x.svg"], "cannot write"),
    ],
    ids=["step-range", "overlap-direct", "two-views", "no-window", "rf-no-layer", "rf-unknown", "rf-flat", "rf-unit", "unwritable"],
)
def test_bad_draw_requests_exit_2_with_a_message(run_cli: Callable[..., object], args: list[str], message: str) -> None:
    result = run_cli(args)
    assert result.code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_cli_writes_an_animated_svg(run_cli: Callable[..., object], tmp_path: Path) -> None:
    target = tmp_path / "conv.svg"
    result = run_cli(["draw", "conv2d", "--in", "1x5x5", "-k", "3", "-s", "2", "-p", "1", "-o", str(target)])
    assert result.code == 0, result.output
    root = ET.parse(target).getroot()
    animations = [e for e in root.iter() if e.tag.endswith("animate")]
    assert len(animations) == 9  # one per output position
    assert {a.get("repeatCount") for a in animations} == {"indefinite"}
    # the legend gives the output-size formula with the numbers substituted
    assert "H_out = ⌊(5 + 1 + 1 - 1·(3-1) - 1)/2⌋ + 1 = 3" in ET.tostring(root, encoding="unicode")


def test_terminal_frame_is_plain_without_colour(run_cli: Callable[..., object], monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_cli(["draw", "conv_transpose2d", "--in", "1x2x2", "-k", "3", "-s", "2", "--step", "1"])
    assert result.code == 0
    assert "\x1b[" not in result.stdout
    assert "··" in result.stdout and "██" in result.stdout
    coloured = render_terminal(layer("conv2d", (1, 4, 4), kernel_size=3), Options("step", 1), colour=True)
    assert "\x1b[38;5;" in coloured

    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(Tty())
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "xterm-256color")
    assert use_colour(Tty())


# --------------------------------------------------------------------------------------------
# Path counts: explicit enumeration of every path
# --------------------------------------------------------------------------------------------

LayerDef = dict[str, object]


@st.composite
def small_networks(draw: st.DrawFn) -> tuple[int, list[LayerDef]]:
    """1D chains of 1-3 layers: convs (stride, dilation, asymmetric padding), transposed convs
    (crop, output_padding) and same-size residual blocks."""
    size = draw(st.integers(3, 9))
    layers: list[LayerDef] = []
    current = size
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv", "transposed", "residual"]))
        k, d = draw(st.integers(1, 3)), draw(st.integers(1, 2))
        if kind == "conv":
            s, a, b = draw(st.integers(1, 2)), draw(st.integers(0, 2)), draw(st.integers(0, 2))
            if current + a + b < d * (k - 1) + 1:
                continue
            layers.append({"kind": "conv", "k": k, "s": s, "d": d, "pad": (a, b)})
            current = (current + a + b - d * (k - 1) - 1) // s + 1
        elif kind == "transposed":
            s = draw(st.integers(1, 2))
            p = draw(st.integers(0, d * (k - 1)))
            op = draw(st.integers(0, max(s, d) - 1))
            layers.append({"kind": "transposed", "k": k, "s": s, "d": d, "p": p, "op": op})
            current = (current - 1) * s - 2 * p + d * (k - 1) + op + 1
        else:
            k = 2 * draw(st.integers(0, 1)) + 1  # odd kernel, same padding: the sizes match for the add
            layers.append({"kind": "residual", "k": k, "d": d, "pad": (d * (k - 1) // 2,) * 2})
        if current > 14:
            break
    assume(layers and 1 <= current <= 14)
    return size, layers


def spec_of(size: int, layers: list[LayerDef]) -> NetResult:
    items: list[object] = []
    for i, ly in enumerate(layers):
        name = f"l{i}"
        if ly["kind"] == "conv":
            items.append({"type": "conv1d", "name": name, "out_channels": 1, "kernel_size": ly["k"], "stride": ly["s"],
                          "dilation": ly["d"], "padding": [list(ly["pad"])]})  # fmt: skip
        elif ly["kind"] == "transposed":
            items.append({"type": "conv_transpose1d", "name": name, "out_channels": 1, "kernel_size": ly["k"],
                          "stride": ly["s"], "dilation": ly["d"], "padding": ly["p"], "output_padding": ly["op"]})  # fmt: skip
        else:
            body = {"type": "conv1d", "out_channels": 1, "kernel_size": ly["k"], "dilation": ly["d"], "padding": [list(ly["pad"])]}
            items.append({"name": name, "residual": [body]})
    data = {"name": "small", "input": f"1x{size}", "defaults": {"bias": False}, "layers": items}
    return evaluate_network(parse_network(data, "small.yaml"), batch=None)


def reads(ly: LayerDef, o: int, size: int) -> list[int]:
    """Input positions output ``o`` of one layer reads (with multiplicity), from the definitions:
    a conv slides a window from ``-p_before`` in steps of ``s`` (taps ``t·d`` apart); a
    transposed conv sends input ``i`` to ``i·s + t·d - p``; a residual adds its input itself."""
    if ly["kind"] == "conv":
        a = ly["pad"][0]
        return [x for t in range(ly["k"]) if 0 <= (x := o * ly["s"] - a + t * ly["d"]) < size]
    if ly["kind"] == "transposed":
        return [
            i
            for i in range(size)
            for t in range(ly["k"])
            if i * ly["s"] + t * ly["d"] - ly["p"] == o
        ]
    a = ly["pad"][0]
    body = [x for t in range(ly["k"]) if 0 <= (x := o - a + t * ly["d"]) < size]
    return [*body, o]


def enumerate_paths(layers: list[LayerDef], sizes: list[int], depth: int, position: int, tally: dict[int, int]) -> None:
    """Walk every path from (layer ``depth``, ``position``) down to the input, one at a time."""
    if depth == 0:
        tally[position] = tally.get(position, 0) + 1
        return
    for below in reads(layers[depth - 1], position, sizes[depth - 1]):
        enumerate_paths(layers, sizes, depth - 1, below, tally)


@given(small_networks(), st.data())
@settings(max_examples=80)
def test_path_counts_equal_an_enumeration_of_every_path(net: tuple[int, list[LayerDef]], data: st.DataObject) -> None:
    size, layers = net
    result = spec_of(size, layers)
    sizes = [size]
    names = []
    for i in range(len(layers)):
        row = [r for r in result.rows if r.name == f"l{i}" or r.name.startswith(f"l{i}.")][-1]
        sizes.append(row.output_shape[1])
        names.append(f"l{i}")
    unit = data.draw(st.integers(0, sizes[-1] - 1))
    counted = count_paths(result, names[-1], str(unit))
    tally: dict[int, int] = {}
    enumerate_paths(layers, sizes, len(layers), unit, tally)
    assert counted.counts == {(x,): n for x, n in tally.items() if n}


def test_path_counts_of_resnet50_fill_exactly_the_theoretical_field() -> None:
    from convcalc.network.evaluate import evaluate_file

    result = evaluate_file(str(ROOT / "specs/resnet50.yaml"))
    paths = count_paths(result, "layer2", "14,14")
    field = paths.row.field
    assert field is not None
    for axis, a in enumerate(field):
        centre = a.start + 14 * a.jump
        reached = {c[axis] for c in paths.counts}
        assert (min(reached), max(reached)) == (centre - (a.size - 1) / 2, centre + (a.size - 1) / 2)
    # the busiest pixels hold half the paths: far fewer than the theoretical field (Luo et al. 2016)
    assert paths.smallest_share((1, 2)) * 4 < len(paths.counts)


def test_path_counting_is_bounded() -> None:
    from convcalc.network.evaluate import evaluate_file

    result = evaluate_file(str(ROOT / "specs/resnet18.yaml"))
    with pytest.raises(LimitError, match="more than 1,000 steps"):
        count_paths(result, "layer2", max_work=1000)


def test_rf_picture_marks_global_context(tmp_path: Path) -> None:
    """A squeeze-and-excitation gate (global pool, broadcast multiply) is marked."""
    spec = tmp_path / "se.yaml"
    spec.write_text(
        "name: se\ninput: 4x9x9\ndefaults: {bias: false}\nlayers:\n"
        "  - {type: conv2d, name: conv, out_channels: 4, kernel_size: 3, padding: 1}\n"
        "  - {type: global_avgpool, name: pool, input: conv}\n"
        "  - {type: multiply, name: gate, inputs: [conv, pool]}\n"
    )
    from convcalc.draw.rf import draw_rf

    text = draw_rf(str(spec), "gate", "4,4")
    root = ET.fromstring(text)
    cells = with_role(root, "input")
    assert len(cells) == 81
    assert all(int(c.get("data-paths") or 0) > 0 for c in cells)  # every pixel reaches the unit
    assert "global context" in text


# --------------------------------------------------------------------------------------------
# HTML report
# --------------------------------------------------------------------------------------------


class Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "action", "data")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.mark.parametrize("name", ["resnet50", "googlenet", "wavenet", "unet", "c3d", "dcgan_generator"])
def test_html_report_is_self_contained(run_cli: Callable[..., object], tmp_path: Path, name: str) -> None:
    target = tmp_path / "report.html"
    result = run_cli(["net", f"specs/{name}.yaml", "--format", "html", "-o", str(target)])
    assert result.code == 0, result.output
    html = target.read_text()
    parser = Collector()
    parser.feed(html)
    parser.close()
    assert not parser.urls  # no src/href at all: nothing is fetched
    assert not re.search(r"https?://|url\(|@import|<link", html)
    assert {"details", "svg", "table", "style"} <= set(parser.tags)
    assert "prefers-color-scheme: dark" in html and "@media print" in html
    json = run_cli(["net", f"specs/{name}.yaml", "--format", "json"])
    import json as json_module

    totals = json_module.loads(json.stdout)["totals"]
    text = "".join(parser.text)
    assert f"{totals['params']:,}" in text and f"{totals['macs']:,}" in text


def test_html_lists_every_layer_once(tmp_path: Path) -> None:
    from convcalc.network.evaluate import evaluate_file
    from convcalc.render.html import render_html

    result = evaluate_file(str(ROOT / "specs/resnet18.yaml"))
    parser = Collector()
    parser.feed(render_html(result))
    text = "\n".join(parser.text)
    for row in result.rows:
        assert re.search(rf"(^|\n){re.escape(row.name)}(\n|$)", text), row.name


def test_html_depth_folds_the_rows_inside_each_block() -> None:
    """``--depth N`` folds the report's table as it folds the other formats: with depth 2 each
    residual block of a ResNet is one row, with depth 1 only the top-level rows are left."""
    from convcalc.network.evaluate import evaluate_file
    from convcalc.render.html import render_html

    result = evaluate_file(str(ROOT / "specs/resnet18.yaml"))
    for depth in (1, 2):
        parser = Collector()
        parser.feed(render_html(result, depth))
        lines = set("\n".join(parser.text).split("\n"))
        shown = {row.name for row in result.rows} & lines
        folded = {row.name for row in result.fold(depth)}
        assert folded <= lines
        assert shown == {row.name for row in result.rows if row.name in folded}


@pytest.mark.parametrize(
    "args",
    [
        ["shape", "conv2d", "--in", "3x8x8", "-o", "4", "-k", "3"],
        ["compare", "conv2d", "separable2d", "--in", "3x8x8", "-o", "4", "-k", "3"],
        ["run", "conv2d", "--in", "3x8x8", "-o", "4", "-k", "3"],
    ],
    ids=["shape", "compare", "run"],
)
def test_table_commands_refuse_html_with_exit_2(run_cli: Callable[..., object], args: list[str]) -> None:
    result = run_cli([*args, "--format", "html"])
    assert result.code == 2, result.output
    assert "html is a format of network reports only" in result.stderr
    assert "convcalc net SPEC --format html" in result.stderr
    assert "Traceback" not in result.output


def test_table_renderer_refuses_html_with_a_convcalc_error() -> None:
    from convcalc.render.table import Format, Table, render

    with pytest.raises(ConvcalcError, match="network reports only"):
        render(Format.html, Table(["a"], [[1]]), {"a": 1})


def test_net_output_file_holds_what_stdout_would(run_cli: Callable[..., object], tmp_path: Path) -> None:
    target = tmp_path / "net.csv"
    written = run_cli(["net", "specs/resnet18.yaml", "--format", "csv", "--output", str(target)])
    printed = run_cli(["net", "specs/resnet18.yaml", "--format", "csv"])
    assert written.code == 0 and printed.code == 0
    assert written.stdout == ""
    assert target.read_text() == printed.stdout
    assert f"wrote {target}" in written.stderr


def test_net_html_of_a_failing_spec_covers_the_layers_before_it(run_cli: Callable[..., object], tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "name: bad\ninput: 3x8x8\nlayers:\n"
        "  - {type: conv2d, name: first, out_channels: 4, kernel_size: 3}\n"
        "  - {type: conv2d, name: second, out_channels: 4, kernel_size: 9}\n"
    )
    target = tmp_path / "bad.html"
    result = run_cli(["net", str(spec), "--format", "html", "-o", str(target)])
    assert result.code == 2
    assert "second" in result.stderr
    html = target.read_text()
    assert "Stopped at the failing layer" in html and ">first<" in html


def test_errors_are_convcalc_errors() -> None:
    with pytest.raises(ConvcalcError):
        draw_layer(layer("conv2d", (1, 5, 5), kernel_size=3), Options("step", 99))


def test_path_counts_equal_the_gradient_of_a_ones_network(tmp_path: Path) -> None:
    """With every weight 1 and no bias, d unit / d pixel counts the paths (Luo et al. 2016):
    torch's autograd on the same 2D network (strides, dilation, padding, a residual block, a
    transposed conv with output_padding, nearest upsampling) is an independent oracle."""
    torch = pytest.importorskip("torch")
    from torch import nn

    spec = tmp_path / "net.yaml"
    spec.write_text(
        "name: ones\ninput: 1x11x10\ndefaults: {bias: false}\nlayers:\n"
        "  - {type: conv2d, name: a, out_channels: 1, kernel_size: [3, 2], stride: [2, 1], padding: [1, 0]}\n"
        "  - name: res\n"
        "    residual: [{type: conv2d, out_channels: 1, kernel_size: 3, dilation: 2, padding: 2}]\n"
        "  - {type: conv_transpose2d, name: up, out_channels: 1, kernel_size: 3, stride: 2, padding: 1, output_padding: 1}\n"
        "  - {type: upsample, name: near, scale_factor: 2, mode: nearest}\n"
        "  - {type: conv2d, name: b, out_channels: 1, kernel_size: 2, stride: 3}\n"
    )
    from convcalc.network.evaluate import evaluate_file

    result = evaluate_file(str(spec))
    a = nn.Conv2d(1, 1, (3, 2), stride=(2, 1), padding=(1, 0), bias=False)
    r = nn.Conv2d(1, 1, 3, dilation=2, padding=2, bias=False)
    up = nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, output_padding=1, bias=False)
    b = nn.Conv2d(1, 1, 2, stride=3, bias=False)
    for module in (a, r, up, b):
        nn.init.ones_(module.weight)
    x = torch.zeros(1, 1, 11, 10, dtype=torch.float64, requires_grad=True)
    h = nn.functional.conv2d(x, a.weight.double(), stride=(2, 1), padding=(1, 0))
    h = h + nn.functional.conv2d(h, r.weight.double(), dilation=2, padding=2)
    h = nn.functional.conv_transpose2d(h, up.weight.double(), stride=2, padding=1, output_padding=1)
    h = nn.functional.interpolate(h, scale_factor=2, mode="nearest")
    y = nn.functional.conv2d(h, b.weight.double(), stride=3)
    assert tuple(y.shape[1:]) == result.output_shape
    for unit in [(0, 0), (y.shape[2] // 2, y.shape[3] // 2), (y.shape[2] - 1, y.shape[3] - 1)]:
        (grad,) = torch.autograd.grad(y[0, 0, unit[0], unit[1]], x, retain_graph=True)
        want = {(i, j): round(float(grad[0, 0, i, j])) for i in range(11) for j in range(10) if grad[0, 0, i, j] != 0}
        assert count_paths(result, "b", f"{unit[0]},{unit[1]}").counts == want


def test_channel_shuffle_sends_each_channel_where_reshape_transpose_flatten_does(run_cli: Callable[..., object]) -> None:
    """ShuffleNet: view the channels as (g, C/g), transpose, flatten (Zhang et al. 2018)."""
    channels, groups = 12, 3
    grid = [list(range(g * channels // groups, (g + 1) * channels // groups)) for g in range(groups)]
    order = [grid[g][j] for j in range(channels // groups) for g in range(groups)]  # the new channel order
    where = [order.index(c) for c in range(channels)]  # position of each input channel
    result = run_cli(["draw", "channel_shuffle", "--in", f"{channels}x3x3", "-g", str(groups)])
    assert result.code == 0  # type: ignore[attr-defined]
    assert f"go to positions {' '.join(map(str, where))}" in result.stdout  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kind", "shape", "fields"),
    [
        ("conv1d", (2, 9), {"kernel_size": 3, "padding": "causal", "dilation": 2}),
        ("conv3d", (1, 4, 4, 4), {"kernel_size": 2, "stride": 2}),
        ("conv_transpose1d", (1, 4), {"kernel_size": 4, "stride": 2, "padding": 1}),
        ("conv_transpose3d", (1, 2, 2, 2), {"kernel_size": 3, "stride": 2, "output_padding": 1}),
        ("depthwise2d", (2, 5, 5), {"kernel_size": 3, "depth_multiplier": 2}),
        ("separable1d", (2, 8), {"kernel_size": 3}),
        ("separable3d", (2, 3, 4, 4), {"kernel_size": 3, "padding": 1}),
        ("spatial_separable3d", (2, 3, 4, 4), {"kernel_size": 3, "padding": 1}),
        ("flattened3d", (2, 3, 4, 4), {"kernel_size": 3, "padding": 1}),
        ("p3d", (2, 3, 4, 4), {"kernel_size": 3, "padding": 1, "variant": "B"}),
        ("pointwise", (4, 3, 3), {"groups": 2}),
        ("deformable2d", (2, 5, 5), {"kernel_size": 3}),
        ("maxpool2d", (1, 6, 6), {"kernel_size": 2, "stride": 2}),
        ("avgpool1d", (1, 7), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_every_kind_draws_a_frame_per_output_position_of_each_window_stage(
    kind: str, shape: tuple[int, ...], fields: dict[str, object]
) -> None:
    from convcalc.kinds import lookup

    if lookup(kind).field("out_channels") is None:
        result = evaluate_layer(parse_layer({"type": kind, **fields}), shape)
    else:
        result = layer(kind, shape, **fields)
    root = picture(result)
    windows = [s for s in result.stages if s.op.__class__.__name__ in ("Conv", "ConvTranspose", "Pool")]
    assert windows
    assert len(frames(root)) == sum(math.prod(s.output[1:]) for s in windows)
    assert len(with_role(root, "output")) == sum(math.prod(s.output[1:]) for s in windows)
