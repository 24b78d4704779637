"""Write an evaluated network as one standalone PyTorch module (in the spirit of torch.fx codegen).

Plan, then write: every layer row becomes one ``nn.Module`` registered at the spec's layer path
(``nn.ModuleDict`` containers for blocks, so ``model.get_submodule("layer1.0.conv1")`` is the
spec's ``layer1.0.conv1``), and one statement of ``forward``; merges (add, concat, multiply) are
tensor operations. A value consumed only by the next statement flows through ``x``, as in
hand-written code; any other value gets a name from its layer path (``layer1_0_relu``), and a
value nothing reads (a side branch such as Inception's auxiliary head) a ``_``-prefixed one.
Rows of ``training_only`` items (auxiliary heads) run under ``if self.training:``, as torchvision
writes ``if self.aux_logits and self.training:``: their modules exist (the params count) but an
eval-mode forward skips their work, as ``convcalc net`` does in its default mode.
Composite convolutions become small helper classes whose submodules are their stages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from convcalc.errors import SpecError
from convcalc.interop.torch_export.emitters import Composite, Layer, Node, find
from convcalc.interop.torch_export.source import INDENT, Bin, Call, Expr, Kw, Seq, flat, identifier, is_attribute, lines
from convcalc.network.evaluate import INPUT_TENSOR
from convcalc.network.result import LayerRow, NetResult
from convcalc.parse.values import format_shape

MODULE_ATTRIBUTES = frozenset({
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "clear", "compile",
    "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer", "get_extra_state",
    "get_parameter", "get_submodule", "half", "ipu", "items", "keys", "load_state_dict", "modules", "mtia",
    "named_buffers", "named_children", "named_modules", "named_parameters", "parameters", "pop",
    "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter", "register_state_dict_post_hook",
    "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict",
    "to", "to_empty", "train", "training", "type", "update", "values", "xpu", "zero_grad", "_apply", "_buffers",
    "_modules", "_parameters", "_version", "_call_impl", "_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
})  # fmt: skip
"""Names ``nn.Module``/``nn.ModuleDict`` already use: PyTorch refuses them as submodule names."""

RESERVED = frozenset({"x", "self", "torch", "nn", "F", "DeformConv2d", "build", "INPUT_SHAPE", "super", "getattr", "float"})

HELPERS = {
    "ChannelSlice": '''class ChannelSlice(nn.Module):
    """Channels start:stop of the input (x[:, start:stop]), e.g. ShuffleNetV2's split."""

    def __init__(self, start: int, stop: int) -> None:
        super().__init__()
        self.start = start
        self.stop = stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start : self.stop]

    def extra_repr(self) -> str:
        return f"start={self.start}, stop={self.stop}"
''',
    "ChannelLayerNorm": '''class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels at each position of an N x C x ... map (ConvNeXt)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)
''',
    "TokenEmbedding": '''class TokenEmbedding(nn.Embedding):
    """Token ids N x 1 x L -> vectors N x E x L (channels first, ready for Conv1d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x[:, 0].long()).transpose(1, 2)
''',
    "DeformableConv2d": '''class DeformableConv2d(nn.Module):
    """Deformable convolution: offsets (v2: and masks) from a conv, then DeformConv2d."""

    def __init__(self, offset: nn.Conv2d, conv: DeformConv2d, modulated: bool) -> None:
        super().__init__()
        self.offset = offset
        self.conv = conv
        self.modulated = modulated

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = self.offset(x)
        if not self.modulated:
            return self.conv(x, offset)
        masks = offset.shape[1] // 3
        offset, mask = offset.split([2 * masks, masks], dim=1)
        return self.conv(x, offset, mask.sigmoid())
''',
}
"""Helper classes a translation may need, written into the file only when used."""


class Statement(NamedTuple):
    """One line of ``forward``: ``output = build(input variables)``, after an optional comment."""

    output: str
    inputs: tuple[str, ...]
    build: Callable[[list[str]], Expr]
    hint: str
    comment: str = ""
    training: bool = False
    """Runs only in ``train()`` mode (inside ``if self.training:``)."""


def write_forward(statements: Sequence[Statement], source: str, result: str, indent: str) -> list[str]:
    """The body of ``forward(self, x)``: ``x`` carries every value read only by the next statement;
    each run of training-only statements is one ``if self.training:`` block."""
    consumers: dict[str, list[int]] = {}
    for index, statement in enumerate(statements):
        for name in statement.inputs:
            consumers.setdefault(name, []).append(index)
    consumers.setdefault(result, []).append(len(statements))
    variables = {source: "x"}
    taken = set(RESERVED)
    holder = source
    out: list[str] = []
    for index, statement in enumerate(statements):
        opens = statement.training and not (index and statements[index - 1].training)
        if statement.comment:
            out.append(f"{indent if opens or not statement.training else indent + INDENT}# {statement.comment}")
        if opens:
            out.append(f"{indent}if self.training:")
        at = indent + INDENT if statement.training else indent
        expr = statement.build([variables[name] for name in statement.inputs])
        uses = consumers.get(statement.output, [])
        if uses == [len(statements)] and index == len(statements) - 1 and not statement.training:
            return [*out, *lines("return ", expr, "", at)]
        if uses == [index + 1] and max(consumers.get(holder, [0])) <= index:
            variable, holder = "x", statement.output
        else:
            variable = _unique(("_" if not uses else "") + identifier(statement.hint), taken)
        variables[statement.output] = variable
        out.extend(lines(f"{variable} = ", expr, "", at))
    return [*out, f"{indent}return {variables[result]}"]


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    taken.add(candidate)
    return candidate


STRUCTURAL = ("sequence", "residual", "branches")
"""Block types that are structure, not a named template call (no comment in ``forward``)."""

MERGES: dict[str, Callable[[list[str]], Expr]] = {
    "add": lambda names: Bin("+", tuple(names)),
    "multiply": lambda names: Bin("*", tuple(names)),
    "concat": lambda names: Call("torch.cat", (Seq(tuple(names), tuple_=False), Kw("dim", "1"))),
}
"""Merge rows: tensor operations in ``forward`` (as torchvision writes them)."""


def call_layer(access: str, layer: Layer) -> Callable[[list[str]], Expr]:
    """``access(x)`` with the layer's explicit input padding and output crop."""

    def build(names: list[str]) -> Expr:
        argument: Expr = names[0]
        if layer.pad:
            value = (Kw("value", layer.pad_value),) if layer.pad_value else ()
            argument = Call("F.pad", (argument, Seq(tuple(str(v) for v in layer.pad)), *value))
        expr: Expr = Call(access, (argument, *names[1:]))
        if layer.crop:
            expr = Call("F.pad", (expr, Seq(tuple(str(v) for v in layer.crop))))
        return expr

    return build


class Exporter:
    """Collects the pieces of one exported file: module tree, forward, helpers, imports."""

    def __init__(self, result: NetResult) -> None:
        self.result = result
        self.init: list[str] = []
        self.statements: list[Statement] = []
        self.containers: set[str] = set()
        self.helpers: dict[str, str] = {}
        self.imports: dict[str, None] = {}
        self.uses_functional = False

    # -- module tree ---------------------------------------------------------------------------

    def access(self, parts: Sequence[str]) -> str:
        text = "self"
        for depth, part in enumerate(parts):
            if is_attribute(part):
                text += f".{part}"
            elif depth == 0:
                text = f'getattr(self, "{part}")'
            else:
                text += f'["{part}"]'
        return text

    def assign(self, parts: Sequence[str], ctor: Expr) -> None:
        if len(parts) == 1 and not is_attribute(parts[0]):
            self.init.extend(lines("", Call("self.add_module", (f'"{parts[0]}"', ctor)), "", 2 * INDENT))
        else:
            self.init.extend(lines(f"{self.access(parts)} = ", ctor, "", 2 * INDENT))

    def register(self, row: LayerRow, ctor: Expr) -> str:
        """Put ``ctor`` at the row's path (creating block containers) and return its access expression."""
        parts = row.name.split(".")
        for part in parts:
            if part in MODULE_ATTRIBUTES:
                raise SpecError(
                    f"PyTorch cannot name a submodule '{part}': nn.Module already has an attribute of that name.",
                    layer=row.name,
                    where=row.where,
                    hint="Rename the layer or block in the spec (the export keeps spec paths as module paths).",
                )
        for depth in range(1, len(parts)):
            prefix = ".".join(parts[:depth])
            if prefix not in self.containers:
                self.containers.add(prefix)
                self.assign(parts[:depth], Call("nn.ModuleDict"))
        self.assign(parts, ctor)
        return self.access(parts)

    # -- rows ----------------------------------------------------------------------------------

    def add_row(self, row: LayerRow) -> None:
        output = row.stages[-1].name
        if row.spec is None:
            inputs = row.stages[0].inputs
            self.statements.append(Statement(output, inputs, MERGES[row.type], row.name))
            return
        emit = find(row.type)
        if emit is None:
            raise SpecError(
                f"the layer type '{row.type}' has no PyTorch translation, so the network cannot be exported.",
                layer=row.name,
                where=row.where,
                hint="Replace it by types PyTorch has (convcalc types lists them), or export without it.",
            )
        emitted = emit(row)
        source = tuple(dict.fromkeys(i for s in row.stages for i in s.inputs if not i.startswith(row.name + "/")))
        if isinstance(emitted, Composite):
            ctor = self.composite(emitted)
            access = self.register(row, ctor)
            self.statements.append(Statement(output, source, call_layer(access, Layer(ctor)), row.name))
            return
        self.use(emitted)
        access = self.register(row, emitted.ctor)
        self.statements.append(Statement(output, source[:1], call_layer(access, emitted), row.name))

    def use(self, layer: Layer) -> None:
        for helper in layer.helpers:
            self.helpers.setdefault(helper, HELPERS[helper])
        self.imports.update(dict.fromkeys(layer.imports))
        self.uses_functional = self.uses_functional or bool(layer.pad or layer.crop)

    def composite(self, comp: Composite) -> Expr:
        """Write (once) the helper class of a composite and return its constructor call."""
        modules = [n for n in comp.nodes if n.layer is not None]
        for node in modules:
            assert node.layer is not None
            self.use(node.layer)
        statements = [self.node_statement(node) for node in comp.nodes]
        signature = Call("def __init__", ("self", *(f"{n.name}: nn.Module" for n in modules)))
        body = [
            f"class {comp.name}(nn.Module):",
            f'{INDENT}"""{comp.doc}"""',
            "",
            *lines("", signature, " -> None:", INDENT),
            f"{2 * INDENT}super().__init__()",
            *(f"{2 * INDENT}self.{n.name} = {n.name}" for n in modules),
            "",
            f"{INDENT}def forward(self, x: torch.Tensor) -> torch.Tensor:",
            *write_forward(statements, "in", comp.nodes[-1].name, 2 * INDENT),
        ]
        text = "\n".join(body) + "\n"
        name, n = comp.name, 2
        while self.helpers.get(name, text) != text:
            name, n = f"{comp.name}_{n}", n + 1
            text = text.replace(f"class {comp.name}(", f"class {name}(", 1)
        self.helpers[name] = text
        return Call(name, tuple(Kw(n.name, n.layer.ctor) for n in modules if n.layer is not None))

    @staticmethod
    def node_statement(node: Node) -> Statement:
        if node.layer is None:
            return Statement(node.name, node.inputs, MERGES[node.merge], node.name)
        return Statement(node.name, node.inputs, call_layer(f"self.{node.name}", node.layer), node.name)

    # -- the file ------------------------------------------------------------------------------

    def comments(self) -> dict[str, str]:
        """``# layer1.0: bottleneck`` before the first row of each outermost template call."""
        out: dict[str, str] = {}
        seen: set[str] = set()
        commented: list[str] = []
        for row in self.result.rows:
            parts = row.name.split(".")
            for depth in range(1, len(parts)):
                path = ".".join(parts[:depth])
                block = self.result.blocks.get(path)
                if block is None or path in seen:
                    continue
                seen.add(path)
                call = block.type not in STRUCTURAL and " x" not in block.type
                if call and not any(path.startswith(c + ".") for c in commented):
                    commented.append(path)
                    out.setdefault(row.name, f"{path}: {block.type}")
        return out

    def render(self, class_name: str) -> str:
        result = self.result
        comments = self.comments()
        training: set[str] = set()  # outputs of training-only rows
        for row in result.rows:
            self.add_row(row)
            statement = self.statements[-1]._replace(comment=comments.get(row.name, ""), training=row.training_only)
            self.statements[-1] = statement
            if row.training_only:
                training.add(statement.output)
            elif training.intersection(statement.inputs):
                raise _reads_training(row, "reads the output of a training-only item")
        output = result.rows[-1].stages[-1].name
        if output in training:
            raise _reads_training(result.rows[-1], "is the network's output but belongs to a training-only item")
        forward = write_forward(self.statements, INPUT_TENSOR, output, 2 * INDENT)
        totals = result.totals()
        source = result.spec.source
        doc = [
            f'"""{result.name}: PyTorch module written by convcalc from {source}.',
            "",
            f"Input {format_shape(result.input_shape)} (no batch axis, channels first) ->"
            f" {format_shape(result.output_shape)}.",
            f"convcalc: {totals.params:,} parameters, {totals.macs:,} MACs per sample.",
            f'Module paths are the spec\'s layer paths: model.get_submodule("{result.rows[0].name}").',
            '"""',
        ]
        imports = ["import torch"]
        if self.uses_functional:
            imports.append("import torch.nn.functional as F")
        imports += ["from torch import nn", *self.imports]
        shape = flat(Seq(tuple(str(s) for s in result.input_shape)))
        parts = [
            "\n".join(doc),
            "\n".join(imports),
            f"INPUT_SHAPE = {shape}",
            *(text.rstrip("\n") for text in self.helpers.values()),
        ]
        main = [
            f"class {class_name}(nn.Module):",
            f'{INDENT}"""{result.name} ({len(result.rows)} layers), exported from {source}."""',
            "",
            f"{INDENT}def __init__(self) -> None:",
            f"{2 * INDENT}super().__init__()",
            *self.init,
            "",
            f"{INDENT}def forward(self, x: torch.Tensor) -> torch.Tensor:",
            *forward,
        ]
        build = [
            f"def build() -> {class_name}:",
            f'{INDENT}"""The network in evaluation mode (batch norm uses running statistics)."""',
            f"{INDENT}return {class_name}().eval()",
        ]
        demo = [
            'if __name__ == "__main__":',
            f"{INDENT}model = build()",
            f"{INDENT}print(model(torch.zeros(1, *INPUT_SHAPE)).shape)",
        ]
        head = "\n\n".join(parts[:3])
        blocks = [*parts[3:], "\n".join(main), "\n".join(build), "\n".join(demo)]
        return head + "\n\n\n" + "\n\n\n".join(blocks) + "\n"


def _reads_training(row: LayerRow, what: str) -> SpecError:
    """A value the eval-mode forward would not have (training-only rows run only in ``train()``)."""
    return SpecError(
        f"the layer {what}, which PyTorch runs only in train() mode, so the eval-mode module has no such value.",
        layer=row.name,
        where=row.where,
        hint="Keep training-only items as side branches (an auxiliary head), read by nothing else.",
    )


def class_name(name: str) -> str:
    """``tiny_resnet`` -> ``TinyResnet``; a name that starts with a digit gets a ``Net`` prefix."""
    words = "".join(c if c.isalnum() else " " for c in name).split()
    text = "".join(w[:1].upper() + w[1:] for w in words) or "Network"
    if text[0].isdigit():
        text = "Net" + text
    if text in HELPERS or text in RESERVED:
        text += "Network"
    return text


def export_pytorch(result: NetResult) -> str:
    """The network as a standalone PyTorch module (source text)."""
    return Exporter(result).render(class_name(result.name))
