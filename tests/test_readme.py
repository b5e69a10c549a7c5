"""README.md stays true: its pasted outputs, its Python example and its test command are checked."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def console_sessions() -> list[tuple[str, str]]:
    sessions = []
    for block in blocks("console"):
        command, _, output = block.partition("\n")
        assert command.startswith("$ archdsl ")
        sessions.append((command[2:], output))
    return sessions


@pytest.mark.parametrize(("command", "output"), console_sessions())
def test_pasted_output_is_what_the_command_prints(command: str, output: str, in_root: Path) -> None:
    _, printed = run_cli(*shlex.split(command)[1:])
    assert printed == output


def test_python_example_prints_what_its_comments_say(in_root: Path) -> None:
    (example,) = blocks("python")
    expected = [line.split("# ", 1)[1].strip() for line in example.splitlines() if line.startswith("print(")]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(example, "README.md", "exec"), {})
    assert printed.getvalue().splitlines() == expected


def test_ci_runs_the_readme_test_command() -> None:
    (setup,) = [b for b in blocks("sh") if "install.sh" in b]
    install, test_command = setup.strip().splitlines()
    ci_lines = [
        line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")
    ]
    assert ci_lines[-1] == test_command
    assert "bash scripts/install.sh" in ci_lines and install.startswith("bash scripts/install.sh && ")
