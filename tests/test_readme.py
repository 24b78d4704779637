"""Every command shown in README.md runs, and where the README shows its output, prints exactly that."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def console_examples() -> list[tuple[str, str]]:
    """``(command, expected output)`` pairs from the ```console blocks (output may be empty)."""
    examples = []
    for block in re.findall(r"```console\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S):
        command, output = None, []
        for line in block.splitlines():
            if line.startswith("$ "):
                if command is not None:
                    examples.append((command, "\n".join(output).strip("\n")))
                command, output = line[2:], []
            else:
                output.append(line)
        if command is not None:
            examples.append((command, "\n".join(output).strip("\n")))
    return examples


EXAMPLES = console_examples()
CASES = [pytest.param(c, e, id=c) for c, e in EXAMPLES]


def test_the_readme_has_examples_and_two_setup_commands() -> None:
    assert len(EXAMPLES) >= 8
    quick = README.read_text(encoding="utf-8").split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", quick, flags=re.S)[0].strip().splitlines()
    assert len(commands) == 2
    assert "pytest" in commands[1] and "convcalc" in commands[0]


@pytest.mark.parametrize(("command", "expected"), CASES)
def test_readme_example(run_cli, command: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    args = shlex.split(command)
    assert args[0] == "convcalc"
    if args[1] == "run":
        args += ["--repeats", "1", "--warmup", "0"]
    result = run_cli(args[1:])
    assert result.code == 0, result.output
    if expected:
        assert result.stdout.rstrip("\n") == expected
