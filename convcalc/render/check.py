"""Render ``check`` results: text, GitHub Actions annotations, JUnit XML."""

from __future__ import annotations

import os
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


NO_EXPECTATIONS = "no expectations: nothing is checked (add an 'expect:' block, or run 'convcalc check --update {file}')"


def _line(where: object) -> str:
    return str(where) if where is not None else ""


def relative(path: str) -> str:
    """``path`` relative to the working directory when it lies under it (GitHub ignores annotations
    with absolute paths); other paths and standard input stay as they are."""
    if not os.path.isabs(path):
        return path
    try:
        inside = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return path if inside.startswith(os.pardir) else inside


def render_check_text(results: Sequence[CheckResult]) -> str:
    """``PASS``/``FAIL``/``ERROR`` per spec, then each failure as ``file:line: message``."""
    out = []
    for r in results:
        label = r.file if r.name == r.file else f"{r.file} ({r.name})"
        if r.unchecked:
            out.append(f"WARN  {label}: {NO_EXPECTATIONS.format(file=r.file)}")
            continue
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
    unchecked = sum(1 for r in results if r.unchecked)
    text = f"{len(results)} spec(s): {counts['pass']} passed, {counts['fail']} failed, {counts['error']} with errors"
    return text + (f" ({unchecked} without expectations)" if unchecked else "")


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(file: str, line: int | None, title: str, message: str, level: str = "error") -> str:
    """One GitHub Actions workflow command: ``::error file=...,line=...,title=...::message`` (the
    file relative to the working directory: GitHub drops annotations with absolute paths)."""
    props = [f"file={_escape_property(relative(file))}"]
    if line is not None:
        props.append(f"line={line}")
    props.append(f"title={_escape_property(title)}")
    return f"::{level} {','.join(props)}::{_escape_data(message)}"


def render_check_github(results: Sequence[CheckResult]) -> str:
    """An ``::error`` annotation per failure (shown inline on the PR), then the summary."""
    out = []
    for r in results:
        if r.unchecked:
            out.append(annotation(r.file, None, "convcalc check", NO_EXPECTATIONS.format(file=relative(r.file)), "warning"))
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
    """JUnit XML: one suite per spec, one test case per expectation (plus one for evaluating it);
    every case carries ``file`` and ``line`` (where the expectation is written), suites and the
    evaluating case the ``time`` the spec took, in seconds. An expectation that ``--in``/``--set``
    made inapplicable is a ``<skipped>`` case saying why; a spec without expectations has a
    skipped case saying so."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="convcalc check")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for r in results:
        file = relative(r.file)
        suite = ET.SubElement(root, "testsuite", name=f"{file} ({r.name})", time=f"{r.seconds:.6f}")
        error_where = r.error.where if r.error is not None else None
        cases = [("evaluates", True, False, "", r.error, error_where, r.seconds)] + [
            (e.what, e.ok, e.skipped, f"{_line(e.where)}: {e.message}", None, e.where, 0.0) for e in r.expectations
        ]
        counts = {"tests": len(cases), "failures": 0, "errors": 0, "skipped": 0}
        for name, ok, skipped, message, error, where, seconds in cases:
            case = ET.SubElement(suite, "testcase", classname=file, name=name, file=file, time=f"{seconds:.6f}")
            if where is not None and where.line is not None:
                case.set("line", str(where.line))
            if skipped:
                ET.SubElement(case, "skipped", message=message)
                counts["skipped"] += 1
            elif error is not None:
                node = ET.SubElement(case, "error", message=str(error), type=type(error).__name__)
                node.text = str(error)
                counts["errors"] += 1
            elif not ok:
                node = ET.SubElement(case, "failure", message=message, type="ExpectationFailed")
                node.text = message
                counts["failures"] += 1
        if r.unchecked:
            case = ET.SubElement(suite, "testcase", classname=file, name="expectations", file=file, time="0")
            ET.SubElement(case, "skipped", message=NO_EXPECTATIONS.format(file=file))
            counts["tests"] += 1
            counts["skipped"] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        total_time += r.seconds
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{total_time:.6f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


def render_check_summary(results: Sequence[CheckResult]) -> str:
    """A Markdown table for the GitHub job summary (``$GITHUB_STEP_SUMMARY``): one row per spec."""
    out = ["### convcalc check", "", "| spec | network | result | expectations | failed | time (s) |", "|---|---|---|---:|---:|---:|"]
    for r in results:
        result = "no expectations" if r.unchecked else r.status
        failed = sum(1 for e in r.expectations if not e.ok)
        cells = [relative(r.file), r.name, result, str(len(r.expectations)), str(failed), f"{r.seconds:.3f}"]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    out += ["", _summary(results), ""]
    return "\n".join(out)


CHECK_RENDERERS: dict[CheckFormat, Callable[[Sequence[CheckResult]], str]] = {
    CheckFormat.text: render_check_text,
    CheckFormat.github: render_check_github,
    CheckFormat.junit: render_check_junit,
}


def render_check(results: Sequence[CheckResult], fmt: CheckFormat | str = CheckFormat.text) -> str:
    """Render in one :class:`CheckFormat`."""
    return CHECK_RENDERERS[CheckFormat(fmt)](results)
