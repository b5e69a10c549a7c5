"""Shared test helpers: the repository root, the CLI runner and golden-file comparison.

Golden files are compared as whole text; `pytest --update-goldens` rewrites them from the current
output, and the diff is then reviewed like code.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from archdsl.cli import main

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "specs").glob("*.arch"))

FASHION = Path("/usr/share/datasets/fashion-mnist")
#: Real training runs read Debian's dataset-fashion-mnist (scripts/install.sh installs it).
needs_fashion = pytest.mark.skipif(
    not (FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed",
)

#: The tests run without PyTorch too, as the light install (`pip install .`) has none: scripts/test.sh
#: runs them again in .venv-light. A test that runs torch says so with `needs_torch`, a file all of
#: whose tests do starts with `pytest.importorskip("torch")`.
HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="needs torch, which the light install lacks")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", help="rewrite golden files from current output")


@pytest.fixture
def in_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runs the test from the repository root, so paths in diagnostics are stable."""
    monkeypatch.chdir(ROOT)
    return ROOT


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No downloads, and an empty default data root: only --data-root and Debian's files count."""
    root = tmp_path / "data-root"
    monkeypatch.setenv("ARCHDSL_NO_DOWNLOAD", "1")
    monkeypatch.setenv("ARCHDSL_DATA", str(root))
    return root


def write_spec(tmp_path: Path, text: str, name: str = "net.arch") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Pins torch's intra-op threads for a block and restores them after. torch is imported here,
    not at the top, so tests that never touch it do not pay for the import; without torch (the
    light install) there is nothing to pin."""
    if not HAS_TORCH:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(args), out=out)
    return code, out.getvalue()


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[Path, str], None]:
    update = request.config.getoption("--update-goldens")

    def compare(path: Path, actual: str) -> None:
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
            return
        assert path.exists(), f"missing golden file {path}; run pytest --update-goldens and review it"
        assert actual == path.read_text(encoding="utf-8"), (
            f"{path} differs (pytest --update-goldens to rewrite)"
        )

    return compare
