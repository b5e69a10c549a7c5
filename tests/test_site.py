"""The mkdocs plugin `archdsl` (archdsl/site.py) and archdsl's own documentation site (mkdocs.yml):
`mkdocs build --strict` as CI would run it, and small projects of one spec each for the plugin's
pages, its errors and its options."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="mkdocs is in the docs extra, which the light install lacks")

from mkdocs.commands.build import build
from mkdocs.config import load_config
from mkdocs.structure.files import Files

import archdsl.site
from archdsl.pages import DOT_MISSING
from archdsl.pipeline import compile_file, compile_files
from archdsl.site import ArchdslPlugin, relink

from conftest import ROOT, SPECS

# Out of the fast lane (`pytest -m "not slow"`): each test runs mkdocs.
pytestmark = pytest.mark.slow

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")

LENET = (ROOT / "specs" / "lenet5.arch").read_text(encoding="utf-8")

BROKEN = """\
model Broken {
    input [1, 28, 28]
    conv(4, kernel=30)
}
"""


def mkdocs(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The venv's mkdocs, as a user runs it (quiet about Material's end-of-life banner)."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1", **(env or {})},
    )


def project(tmp_path: Path, plugin: str, specs: dict[str, str]) -> Path:
    """A project with `mkdocs.yml` (mkdocs' own theme, the plugin configured as `plugin`), an empty
    docs/ and the given spec files."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "mkdocs.yml").write_text(f"site_name: test\nplugins:\n{plugin}", encoding="utf-8")
    for name, text in specs.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def body(html: str) -> str:
    """The page's article, without the theme's navigation around it."""
    return html[html.index('role="main"') :]


@needs_dot
def test_plugin_makes_a_page_per_model_and_an_index(tmp_path: Path) -> None:
    root = project(tmp_path, '  - archdsl:\n      specs: ["specs/*.arch"]\n', {"specs/lenet5.arch": LENET})
    # A link out of docs/, right on GitHub; strict mkdocs would fail on it as written.
    (root / "docs/index.md").write_text("# Home\n\nSee [the spec](../specs/lenet5.arch).\n", encoding="utf-8")
    result = mkdocs("build", "--strict", cwd=root)
    assert result.returncode == 0, result.stderr
    page = body((root / "site/models/LeNet5/index.html").read_text(encoding="utf-8"))
    assert '<h1 id="lenet5">LeNet5</h1>' in page
    assert "<p>Spec: <code>specs/lenet5.arch</code> · input <code>[1, 28, 28]</code>" in page
    diagram = page[page.index('<div class="archdsl-diagram"') : page.index("</svg>")]
    assert "<svg " in diagram and ">conv 5×5, 6, pad 2</text>" in diagram and "img" not in diagram
    # The layer table's first and last rows, and the totals.
    assert re.search(r"<td><code>0</code></td>\s*<td>conv 5×5, 6, pad 2</td>", page)
    assert re.search(r"<td><code>11</code></td>\s*<td>linear 10</td>\s*<td><code>\[10\]</code></td>", page)
    assert "<li>parameters: 61,706 (241.0 KiB as float32)</li>" in page
    index = body((root / "site/models/index.html").read_text(encoding="utf-8"))
    assert '<a href="LeNet5/">LeNet5</a>' in index
    assert "<p>See the spec.</p>" in (root / "site/index.html").read_text(encoding="utf-8")
    assert not (root / "docs/models").exists()  # nothing written beside the sources


def test_spec_error_fails_the_build_with_the_rendered_diagnostic(tmp_path: Path) -> None:
    root = project(tmp_path, '  - archdsl:\n      specs: ["*.arch"]\n', {"broken.arch": BROKEN})
    result = mkdocs("build", cwd=root)
    assert result.returncode == 1
    assert result.stdout == "\nAborted with a BuildError!\n"
    assert result.stderr.endswith(
        "ERROR   -  archdsl: the specs have errors:\n\n"
        "broken.arch:3:5: error[E101]: conv output is empty: input [1, 28, 28], kernel 30, stride 1 "
        "→ 28 − 30 + 1 = -1\n"
        "    3 |     conv(4, kernel=30)\n"
        "      |     ^^^^^^^^^^^^^^^^^^\n"
        "note: the input to this model is [1, 28, 28] (line 2); this network expects larger images\n"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        ("  - archdsl\n", "Plugin 'archdsl' option 'specs': Required configuration not provided."),
        (
            "  - archdsl:\n      specs: [nowhere/*.arch]\n",
            "archdsl: specs: 'nowhere/*.arch' matches no file",
        ),
        (
            "  - archdsl:\n      specs: [a.arch]\n      depth: -1\n",
            "archdsl: depth takes an integer ≥ 0, got -1",
        ),
        ("  - archdsl:\n      specs: a.arch\n", "Plugin 'archdsl' option 'specs': Expected a list of items"),
    ],
)
def test_bad_options_fail_the_build_saying_which(plugin: str, message: str, tmp_path: Path) -> None:
    root = project(tmp_path, plugin, {"a.arch": LENET})
    result = mkdocs("build", cwd=root)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_dot_fails_the_build_naming_apt_get(tmp_path: Path) -> None:
    root = project(tmp_path, "  - archdsl:\n      specs: [a.arch]\n", {"a.arch": LENET})
    # Python and mkdocs are found by absolute path; `dot` is looked up on PATH, which has none.
    result = mkdocs("build", cwd=root, env={"PATH": str(tmp_path / "empty")})
    assert result.returncode == 1
    assert f"archdsl: {DOT_MISSING}" in result.stderr


@needs_dot
def test_two_instances_give_two_sections_and_serve_watches_the_specs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = (
        '  - archdsl:\n      specs: ["nets/*.arch"]\n'
        "  - archdsl:\n      specs: [zoo]\n      dir: zoo\n      depth: 0\n      title: Zoo\n"
    )
    root = project(tmp_path, plugin, {"nets/a.arch": LENET, "zoo/b.arch": LENET.replace("LeNet5", "Other")})
    monkeypatch.chdir(root)
    config = load_config("mkdocs.yml")
    build(config)
    site = Path(config.site_dir)
    assert (site / "models/LeNet5/index.html").is_file() and (site / "zoo/Other/index.html").is_file()
    assert '<h1 id="zoo">Zoo</h1>' in (site / "zoo/index.html").read_text(encoding="utf-8")

    watched: list[str] = []

    class Server:
        def watch(self, path: str) -> None:
            watched.append(path)

    plugins = [p for p in config.plugins.values() if isinstance(p, ArchdslPlugin)]
    for plugin_ in plugins:
        plugin_.on_serve(Server(), config=config, builder=None)  # type: ignore[arg-type]
    assert watched == [
        str(root / "nets"),
        str(root / "nets/a.arch"),
        str(root / "zoo"),
        str(root / "zoo/b.arch"),
    ]


@needs_dot
def test_pages_are_made_again_only_when_a_spec_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, '  - archdsl:\n      specs: ["*.arch"]\n', {"a.arch": LENET})
    monkeypatch.chdir(root)
    compiled: list[list[str]] = []

    def counting(files: list[str]) -> object:
        compiled.append(files)
        return compile_files(files)

    monkeypatch.setattr(archdsl.site, "compile_files", counting)
    config = load_config("mkdocs.yml")
    config = config.plugins.on_config(config)

    def page() -> str:
        files = config.plugins.on_files(Files([]), config=config)
        (lenet,) = [f for f in files if f.src_uri == "models/LeNet5.md"]
        return lenet.content_string

    first = page()
    assert page() == first and compiled == [["a.arch"]]
    Path("a.arch").write_text(LENET.replace("classes: int = 10", "classes: int = 12"), encoding="utf-8")
    os.utime("a.arch", ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    second = page()
    assert len(compiled) == 2 and "Parameters: `classes=12`" in second and "classes=10" in first


def test_links_from_outside_or_out_of_the_docs_become_links_the_site_can_follow() -> None:
    readme = (
        "See [the language](docs/language.md#layout), [`specs/`](specs/) and [x](https://x.org/a).\n"
        '<img src="docs/images/net.png" alt="net"> [gone](nowhere.md)\n'
        "```\n[kept](docs/a.md)\n```\n"
        "[here](#set-up)\n"
    )
    root = str(ROOT)
    assert relink(readme, ".", "docs", "docs", root, None) == (
        "See [the language](language.md#layout), `specs/` and [x](https://x.org/a).\n"
        '<img src="images/net.png" alt="net"> [gone](nowhere.md)\n'
        "```\n[kept](docs/a.md)\n```\n"
        "[here](#set-up)\n"
    )
    assert "[`specs/`](https://github.com/o/r/tree/main/specs)" in relink(
        readme, ".", "docs", "docs", root, "https://github.com/o/r/"
    )
    # A page of docs/ as on GitHub: its links inside docs/ stay as written, others leave the site.
    page = "[spec](../specs/lenet5.arch), [train](training.md#tasks), [img](./images/x.png)\n"
    assert relink(page, "docs", "docs", "docs", root, None) == (
        "spec, [train](training.md#tasks), [img](./images/x.png)\n"
    )
    assert relink(page, "docs", "docs", "docs", root, "https://h/r").startswith(
        "[spec](https://h/r/blob/main/specs/lenet5.arch), "
    )


@needs_dot
@pytest.mark.slow
def test_archdsl_site_builds_strict_with_every_spec(tmp_path: Path) -> None:
    """archdsl's own documentation, as CI builds it: every page, a model page per spec of specs/
    and specs/torchvision/, links and anchors checked (--strict)."""
    pytest.importorskip("material", reason="mkdocs-material is in the docs extra")
    started = time.monotonic()
    result = mkdocs("build", "--strict", "-d", str(tmp_path / "site"), cwd=ROOT)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    site = tmp_path / "site"
    for page in ("language", "training", "editors", "reliability", "architecture"):
        assert (site / page / "index.html").is_file(), page
    home = (site / "index.html").read_text(encoding="utf-8")
    assert '<h1 id="archdsl">archdsl<a class="headerlink"' in home and 'href="language/' in home
    lenet = (site / "models/LeNet5/index.html").read_text(encoding="utf-8")
    assert "<svg " in lenet and ">conv 5×5, 6, pad 2</text>" in lenet and "<td>linear 84</td>" in lenet
    pages = {p.parent.name for p in (site / "models").glob("*/index.html")} - {"torchvision"}
    assert len(pages) == sum(len(compile_file(str(ROOT / spec)).models) for spec in SPECS)
    zoo = sorted(p.stem for p in (ROOT / "specs/torchvision").glob("*.arch"))
    assert zoo and all((site / "models/torchvision" / name / "index.html").is_file() for name in zoo)
    assert seconds < 300, f"the site took {seconds:.0f} s to build"
