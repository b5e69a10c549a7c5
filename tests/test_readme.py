"""README.md stays true: its pasted outputs, its Python example and its test command are checked."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from conftest import ROOT, needs_torch, run_cli

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


@needs_torch
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


def test_the_setup_paragraph_names_the_warnings_the_first_command_prints(in_root: Path) -> None:
    code, out = run_cli("check", "specs/")
    warned = re.findall(r"^(specs/\S+?):\d+:\d+: warning\[(W\d{3})\]", out, flags=re.M)
    assert code == 0 and {file for file, _ in warned} == {"specs/alexnet.arch"}
    numbers = {3: "three", 4: "four", 5: "five"}
    (code_,) = {c for _, c in warned}
    assert f"prints {numbers[len(warned)]} {code_} warnings for `specs/alexnet.arch`" in " ".join(
        README.split()
    )


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_repository_path_a_page_cites_exists(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    cited = set(
        re.findall(
            r"(?<![\w/.-])((?:specs|tests|benchmarks|scripts|docs)/[\w./-]+\.(?:arch|py|md|txt|sh))", text
        )
    )
    missing = sorted(path for path in cited if not (ROOT / path).exists())
    assert not missing, f"{page.name} cites {missing}"
