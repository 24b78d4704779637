"""Render ``check`` results: text, GitHub Actions annotations, JUnit XML."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from convcalc.network.check import CheckResult


class CheckFormat(str, Enum):
    """Output formats of ``convcalc check``."""

    text = "text"
    github = "github"
    junit = "junit"


def _line(where: object) -> str:
    return str(where) if where is not None else ""


def render_check_text(results: Sequence[CheckResult]) -> str:
    """``PASS``/``FAIL``/``ERROR`` per spec, then each failure as ``file:line: message``."""
    out = []
    for r in results:
        label = r.file if r.name == r.file else f"{r.file} ({r.name})"
        skipped = sum(1 for e in r.expectations if e.skipped)
        if r.status == "pass":
            more = f", {skipped} skipped (they state the spec's own input and variables)" if skipped else ""
            out.append(f"PASS  {label}: {len(r.expectations) - skipped} expectation(s) hold{more}")
            continue
        out.append(f"{r.status.upper():5} {label}")
        out += [f"  {_line(e.where)}: {e.message}" for e in r.expectations if not e.ok]
        if r.error is not None:
            out.append(f"  {r.error}")
    out.append(_summary(results))
    return "\n".join(out)


def _summary(results: Sequence[CheckResult]) -> str:
    counts = {status: sum(1 for r in results if r.status == status) for status in ("pass", "fail", "error")}
    return f"{len(results)} spec(s): {counts['pass']} passed, {counts['fail']} failed, {counts['error']} with errors"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(file: str, line: int | None, title: str, message: str) -> str:
    """One GitHub Actions workflow command: ``::error file=...,line=...,title=...::message``."""
    props = [f"file={_escape_property(file)}"]
    if line is not None:
        props.append(f"line={line}")
    props.append(f"title={_escape_property(title)}")
    return f"::error {','.join(props)}::{_escape_data(message)}"


def render_check_github(results: Sequence[CheckResult]) -> str:
    """An ``::error`` annotation per failure (shown inline on the PR), then the summary."""
    out = []
    for r in results:
        for e in r.expectations:
            if not e.ok:
                where = e.where
                out.append(
                    annotation(where.file if where else r.file, where.line if where else None, "convcalc check", e.message)
                )
        if r.error is not None:
            where = r.error.where
            out.append(
                annotation(
                    where.file if where else r.file, where.line if where else None, "convcalc check: bad spec", str(r.error)
                )
            )
    out.append(_summary(results))
    return "\n".join(out)


def render_check_junit(results: Sequence[CheckResult]) -> str:
    """JUnit XML: one suite per spec, one test case per expectation (plus one for evaluating it)."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="convcalc check")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for r in results:
        suite = ET.SubElement(root, "testsuite", name=f"{r.file} ({r.name})")
        cases = [("evaluates", True, "", r.error)] + [
            (e.what, e.ok, f"{_line(e.where)}: {e.message}", None) for e in r.expectations if not e.skipped
        ]
        counts = {"tests": len(cases), "failures": 0, "errors": 0}
        for name, ok, message, error in cases:
            case = ET.SubElement(suite, "testcase", classname=r.file, name=name, file=r.file)
            if error is not None:
                node = ET.SubElement(case, "error", message=str(error), type=type(error).__name__)
                node.text = str(error)
                counts["errors"] += 1
            elif not ok:
                node = ET.SubElement(case, "failure", message=message, type="ExpectationFailed")
                node.text = message
                counts["failures"] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


CHECK_RENDERERS: dict[CheckFormat, Callable[[Sequence[CheckResult]], str]] = {
    CheckFormat.text: render_check_text,
    CheckFormat.github: render_check_github,
    CheckFormat.junit: render_check_junit,
}


def render_check(results: Sequence[CheckResult], fmt: CheckFormat | str = CheckFormat.text) -> str:
    """Render in one :class:`CheckFormat`."""
    return CHECK_RENDERERS[CheckFormat(fmt)](results)
