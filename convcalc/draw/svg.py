"""A minimal SVG writer (standard library only: string building with XML escaping).

Why not a drawing library (drawsvg, svgwrite): the pictures are rectangles, lines, text and
SMIL ``<animate>`` elements with custom ``data-*`` attributes; a library would add a dependency
and an import for ~60 lines of escaping. Output is deterministic (attribute order as given),
so tests can parse it with :mod:`xml.etree.ElementTree`.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

Attr = str | int | float | None


def _number(value: float) -> str:
    """Coordinates with at most two decimals, no trailing zeros (compact, stable output)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def attrs(values: dict[str, Attr]) -> str:
    """`` key="value"`` pairs; ``data_role`` becomes ``data-role``; None values are dropped."""
    parts = []
    for key, value in values.items():
        if value is None:
            continue
        name = key.rstrip("_").replace("_", "-")
        text = _number(value) if isinstance(value, float) else str(value)
        parts.append(f" {name}={quoteattr(text)}")
    return "".join(parts)


class Svg:
    """An SVG document built element by element."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, tag: str, text: str | None = None, /, **values: Attr) -> None:
        """A leaf element, with optional text content."""
        if text is None:
            self.parts.append(f"<{tag}{attrs(values)}/>")
        else:
            self.parts.append(f"<{tag}{attrs(values)}>{escape(text)}</{tag}>")

    def open(self, tag: str, **values: Attr) -> None:
        self.parts.append(f"<{tag}{attrs(values)}>")

    def close(self, tag: str) -> None:
        self.parts.append(f"</{tag}>")

    def rect(self, x: float, y: float, w: float, h: float, tip: str | None = None, **values: Attr) -> None:
        """A rectangle; ``tip`` becomes its ``<title>`` (the tooltip browsers show on hover)."""
        if tip is None:
            self.add("rect", x=float(x), y=float(y), width=float(w), height=float(h), **values)
            return
        self.open("rect", x=float(x), y=float(y), width=float(w), height=float(h), **values)
        self.add("title", tip)
        self.close("rect")

    def text(self, x: float, y: float, content: str, **values: Attr) -> None:
        self.add("text", content, x=float(x), y=float(y), **values)

    def line(self, x1: float, y1: float, x2: float, y2: float, **values: Attr) -> None:
        self.add("line", x1=float(x1), y1=float(y1), x2=float(x2), y2=float(y2), **values)

    def document(self, width: float, height: float, style: str, title: str) -> str:
        """The whole file: the root element with a viewBox, a title, a style sheet and the body."""
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{_number(width)}" height="{_number(height)}"'
            f' viewBox="0 0 {_number(width)} {_number(height)}" font-family="Helvetica, Arial, sans-serif">'
        )
        return "\n".join([head, f"<title>{escape(title)}</title>", f"<style>{style}</style>", *self.parts, "</svg>\n"])

    def fragment(self) -> str:
        """The body alone (to inline into HTML or another picture)."""
        return "\n".join(self.parts)
