"""The light install, as a CI job or a pre-commit hook gets it: the checkout installed with pip into a
fresh virtual environment without extras, then the README's GitHub Actions step run as written.

Needs pip and a package index (PyPI, or a mirror pip is configured for); skipped only when neither
can be had. pip's cache keeps it to seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from conftest import ROOT, SPECS

# wheels, fresh venvs and subprocesses: out of the fast lane
pytestmark = pytest.mark.slow

README = (ROOT / "README.md").read_text(encoding="utf-8")
#: What `pip install archdsl` may weigh, the virtual environment's own pip and setuptools included.
MAX_MB = 60
OFFLINE = (
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
)

BAD_SPEC = """model Net {
    input [3, 32, 32]
    conv(16, kernel=3, groups=5)
    flatten linear(10)
}
"""


def actions_step() -> list[str]:
    """The shell lines of the README's "Check network specs" step."""
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", README, flags=re.S) if "Check network specs" in b]
    run = block.split("run: |\n", 1)[1]
    return [line.strip() for line in run.splitlines() if line.strip()]


def hook_entry(hook: str) -> str:
    text = (ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    (entry,) = re.findall(rf"^- id: {hook}\n(?:  .*\n)*?  entry: (.+)$", text, flags=re.M)
    return entry.strip()


@pytest.fixture(scope="module")
def light(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the checkout installed by the README's own pip line; returns its bin/."""
    work = tmp_path_factory.mktemp("light")
    source = work / "archdsl"
    # What pip needs to build the package (a copy: building in the checkout would leave build/ there).
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "archdsl", source / "archdsl", ignore=shutil.ignore_patterns("__pycache__"))
    try:
        venv.EnvBuilder(with_pip=True).create(work / "venv")
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"cannot create a virtual environment with pip here: {exc}")
    bin_dir = work / "venv" / "bin"
    (install,) = [line for line in actions_step() if line.startswith("pip install")]
    assert '"archdsl @ git+https://github.com/<owner>/archdsl"' in install
    # the README's line as written, with this checkout in place of the repository's URL
    command = install.replace("git+https://github.com/<owner>/archdsl", source.as_uri())
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PIP_VERBOSE": "1"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    if result.returncode != 0 and any(sign in output for sign in OFFLINE):
        pytest.skip("no package index can be reached")
    assert result.returncode == 0, output[-3000:]
    # setuptools says nothing of a deprecated `project.license` table (the newcomer's item 15)
    assert "project.license" not in output and "License classifiers are deprecated" not in output
    return bin_dir


def run(bin_dir: Path, *command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_light_install_has_no_torch_and_stays_small(light: Path) -> None:
    result = run(light, str(light / "python"), "-c", "import torch")
    assert result.returncode == 1 and "No module named 'torch'" in result.stderr
    listed = run(light, str(light / "python"), "-m", "pip", "list", "--format=freeze").stdout
    installed = {line.split("==")[0].lower() for line in listed.splitlines()}
    assert not installed & {"torch", "torchvision", "torchinfo", "matplotlib", "tqdm", "numpy", "graphviz"}
    size = sum(f.stat().st_size for f in light.parent.rglob("*") if f.is_file() and not f.is_symlink())
    assert size < MAX_MB * 2**20, f"{size / 2**20:.1f} MiB"


def test_the_readme_actions_step_runs_as_written(light: Path, tmp_path: Path) -> None:
    (check,) = [line for line in actions_step() if line.startswith("archdsl check")]
    result = run(light, "bash", "-c", check)
    assert result.returncode == 0, result.stderr
    # the step checks specs/*.arch; the warnings are the ones the example specs carry on purpose,
    # which their comments allow: no annotation on a pull request, only the count
    assert result.stdout.splitlines() == [f"archdsl: {len(SPECS)} files, 0 errors, 4 warnings (4 allowed)"]


def test_check_github_annotates_an_error_in_the_light_install(light: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.arch").write_text(BAD_SPEC, encoding="utf-8")
    result = run(light, "archdsl", "check", "--format", "github", "bad.arch", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "::error file=bad.arch,line=3,col=24,endLine=3,endColumn=32,title=archdsl E104::conv groups=5 must "
        "divide the 3 input channels (3 = 5·0 + 3)%0Anote: [3, 32, 32] is the model's input (line 2)",
        "archdsl: 1 file, 1 error, 0 warnings",
    ]


def test_the_pre_commit_hook_entry_checks_the_files_it_is_given(light: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.arch").write_text(BAD_SPEC, encoding="utf-8")
    (tmp_path / "good.arch").write_text("model A {\n    input [4]\n    linear(2)\n}\n", encoding="utf-8")
    entry = hook_entry("archdsl-check").split()
    assert run(light, *entry, "good.arch", cwd=tmp_path).returncode == 0
    failed = run(light, *entry, "good.arch", "bad.arch", cwd=tmp_path)
    assert failed.returncode == 1 and "bad.arch:3:24: error[E104]" in failed.stdout


def test_the_pre_commit_fmt_hook_rewrites_the_files_it_is_given(light: Path, tmp_path: Path) -> None:
    messy = tmp_path / "messy.arch"
    messy.write_text("model A {\n  input [4]\n      linear(2)   # [2]\n}\n", encoding="utf-8")
    done = run(light, *hook_entry("archdsl-fmt").split(), "messy.arch", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert messy.read_text(encoding="utf-8") == "model A {\n    input [4]\n    linear(2)  # [2]\n}\n"


def test_every_static_command_works_without_torch(light: Path, tmp_path: Path) -> None:
    spec = str(ROOT / "specs" / "googlenet_mini.arch")
    commands = [
        ["archdsl", "summary", spec],
        ["archdsl", "render", spec, "-o", str(tmp_path / "g.dot")],
        ["archdsl", "emit", spec, "-o", str(tmp_path / "g.py")],
        ["archdsl", "check", "--format", "sarif", spec],
        ["archdsl", "check", "--format", "json", spec],
        [str(light / "python"), "-c", f"import archdsl; print(archdsl.load({spec!r}).model().params)"],
    ]
    if shutil.which("dot"):
        commands += [
            ["archdsl", "render", spec, "-o", str(tmp_path / "g.svg")],
            ["archdsl", "docs", spec, "-o", str(tmp_path / "docs")],
        ]
    for command in commands:
        result = run(light, *command)
        assert result.returncode == 0, (command, result.stderr)
    assert (tmp_path / "g.py").read_text(encoding="utf-8").startswith("# Generated by `archdsl emit`")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (
            ["train", "specs/lenet5.arch"],
            "archdsl train needs torch, which is not installed: pip install 'archdsl[train]'",
        ),
        (
            ["summary", "specs/lenet5.arch", "--verify"],
            "summary --verify needs torch, which is not installed: pip install 'archdsl[torch]'",
        ),
        (["lsp"], "archdsl lsp needs pygls, which is not installed: pip install 'archdsl[lsp]'"),
        (
            ["import", "torchvision.models:resnet18"],
            "archdsl import needs torch, which is not installed: pip install 'archdsl[torch]'",
        ),
        (
            ["export", "specs/lenet5.arch", "-o", "lenet5.onnx"],
            "archdsl export needs torch, which is not installed: pip install 'archdsl[onnx]'",
        ),
    ],
)
def test_a_command_needing_an_extra_names_it_with_exit_2(
    light: Path, command: list[str], message: str
) -> None:
    result = run(light, "archdsl", *command)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"archdsl: error: {message}\n")


def test_hover_shows_the_same_layer_reference_from_the_wheel(light: Path, tmp_path: Path) -> None:
    # the reference is package data, not docs/language.md: run away from the checkout, it is the same
    from archdsl.ide.queries import layer_reference

    names = ("conv", "windowattention", "pad", "relu", "flatten", "pretrained")
    code = (
        "import json, sys\nfrom archdsl.ide.queries import layer_reference\n"
        "json.dump({name: layer_reference(name) for name in sys.argv[1:]}, sys.stdout)"
    )
    result = run(light, str(light / "python"), "-c", code, *names, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown == {name: layer_reference(name) for name in names}
    assert shown["conv"].startswith("### conv\n") and "| `kernel` | required |" in shown["conv"]


def test_build_in_the_light_install_raises_missing_extra(light: Path) -> None:
    code = (
        "import archdsl\n"
        "try:\n    archdsl.build('specs/lenet5.arch')\n"
        "except ImportError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    result = run(light, str(light / "python"), "-c", code)
    assert result.stdout == (
        "MissingExtra archdsl.build needs torch, which is not installed: pip install 'archdsl[torch]'\n"
    )
