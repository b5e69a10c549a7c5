"""Notebook display (archdsl/notebook.py, `Summary._repr_html_`, `diagram.Rendered`) and the tour,
docs/notebooks/tour.ipynb, executed in a Jupyter kernel running this interpreter."""

from __future__ import annotations

import html
import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import archdsl
from archdsl import notebook
from archdsl.errors import SourceCache, render
from archdsl.pipeline import compile_file

from conftest import ROOT, needs_torch, write_spec

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")

SMALL = """\
model Small {
    input [1, 8, 8]
    "c<1>": conv(4, kernel=3, padding=1) relu
    residual { conv(4, kernel=3, padding=1) }
    flatten
    linear(2)
}
"""

SMALL_LINE = "Small [1, 8, 8] → [2]: 702 params, 12.03 K MACs"

# The row of every statement, the nested conv indented, names and the file escaped.
L = ' style="text-align:left"'
R = ' style="text-align:right"'


def _row(name: str, path: str, op: str, output: str, params: str, macs: str, name_style: str = L) -> str:
    return (
        f'<tr><td{name_style} title="{path}">{name}</td><td{L}>{op}</td><td{L}>{output}</td>'
        f"<td{R}>{params}</td><td{R}>{macs}</td></tr>"
    )


SMALL_HTML = "\n".join(
    [
        '<table class="archdsl-summary">',
        f"<caption{L}><b>Small</b> (a&amp;b.arch, input [1, 8, 8])</caption>",
        f"<thead><tr><th{L}>name</th><th{L}>op</th><th{L}>output</th><th{R}>params</th><th{R}>MACs</th>"
        "</tr></thead>",
        "<tbody>",
        _row("c&lt;1&gt;", "c&lt;1&gt;", "conv 3×3, 4, pad 1", "[4, 8, 8]", "40", "2,304"),
        _row("1", "1", "relu", "[4, 8, 8]", "0", "0"),
        _row("2", "2", "residual (identity)", "[4, 8, 8]", "148", "9,216"),
        _row(
            "0",
            "2.0",
            "conv 3×3, 4, pad 1",
            "[4, 8, 8]",
            "148",
            "9,216",
            ' style="text-align:left;padding-left:2em"',
        ),
        _row("3", "3", "flatten", "[256]", "0", "0"),
        _row("4", "4", "linear 2", "[2]", "514", "512"),
        "</tbody>",
        f"<tfoot><tr><th{L}>total</th><td></td><td{L}>[2]</td><th{R}>702</th><th{R}>12,032</th></tr></tfoot>",
        "</table>",
        "<p>702 parameters (2.7 KiB as float32), 12,032 multiply-accumulates per sample</p>",
    ]
)

BROKEN = """\
model Broken {
    input [1, 8, 8]
    conv(4, kernel=3, padding=1) relu
    residual { conv(8, kernel=3, padding=1) }
}
"""

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)  # a relative path in the caption, as the golden text has it
    write_spec(tmp_path, SMALL, "a&b.arch")
    return "a&b.arch"


@pytest.fixture
def no_dot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_summary_shows_as_an_html_table_of_every_row_with_its_text_escaped(small: str) -> None:
    summary = archdsl.summary(small)
    assert summary._repr_html_() == SMALL_HTML
    assert repr(summary) == "<Summary Small: 6 rows, 702 params>"


def test_summary_shows_in_a_terminal_as_the_table_summary_prints() -> None:
    summary = archdsl.summary(ROOT / "specs" / "lenet5.arch")
    printed: list[str] = []
    summary._repr_pretty_(SimpleNamespace(text=printed.append), False)
    assert printed == [str(summary)]


def test_program_repr_is_one_line_naming_each_model() -> None:
    assert repr(archdsl.load(ROOT / "specs" / "lenet5.arch")) == (
        f"<Program {ROOT / 'specs' / 'lenet5.arch'}: LeNet5 [1, 28, 28] → [10], 61,706 params>"
    )


@needs_dot
def test_a_model_shows_its_summary_line_over_its_diagram(small: str) -> None:
    bundle = notebook.model_bundle(archdsl.load(small).model())
    svg = bundle["image/svg+xml"]
    assert svg.startswith("<svg")
    assert svg.rstrip().endswith("</svg>")
    for label in ("c&lt;1&gt;", "conv 3×3, 4, pad 1", "relu", "flatten", "linear 2", "input [1, 8, 8]"):
        assert label in svg
    assert bundle["text/plain"] == SMALL_LINE
    assert bundle["text/html"] == f'<div class="archdsl-model">\n<p><b>{SMALL_LINE}</b></p>\n{svg}\n</div>'
    # the same model gives the same picture: no date, no random id
    assert notebook.model_bundle(archdsl.load(small).model())["image/svg+xml"] == svg


@needs_dot
def test_a_program_shows_as_its_only_model(small: str) -> None:
    program = archdsl.load(small)
    bundle = notebook.program_bundle(program)
    model = notebook.model_bundle(program.model())
    assert bundle == {
        "text/plain": "<Program a&b.arch: Small [1, 8, 8] → [2], 702 params>",
        "text/html": model["text/html"],
        "image/svg+xml": model["image/svg+xml"],
    }


def test_without_dot_the_cell_says_how_to_install_it_beside_the_summary_line(
    small: str, no_dot: None
) -> None:
    program = archdsl.load(small)
    message = (
        "no diagram: graphviz's `dot` program was not found on the PATH. Install graphviz "
        "(`apt-get install graphviz`, `brew install graphviz` or `conda install graphviz`) and show it again."
    )
    assert notebook.model_bundle(program.model()) == {
        "text/plain": f"{SMALL_LINE}\n{message}",
        "text/html": (
            f'<div class="archdsl-model">\n<p><b>{SMALL_LINE}</b></p>\n'
            "<p><em>no diagram: graphviz&#x27;s <code>dot</code> program was not found on the PATH. "
            "Install graphviz (<code>apt-get install graphviz</code>, <code>brew install graphviz</code> "
            "or <code>conda install graphviz</code>) and show it again.</em></p>\n</div>"
        ),
    }
    bundle = notebook.program_bundle(program)
    assert bundle["text/plain"] == f"<Program a&b.arch: Small [1, 8, 8] → [2], 702 params>\n{message}"
    assert "image/svg+xml" not in bundle


def test_a_program_with_errors_shows_its_diagnostics_as_check_prints_them(tmp_path: Path) -> None:
    path = write_spec(tmp_path, BROKEN, "broken.arch")
    program = compile_file(path)
    rendered = render(program.errors[0], SourceCache(program.sources))
    assert "error[E106]" in rendered and "^^^" in rendered
    bundle = notebook.program_bundle(program)
    assert bundle == {
        "text/plain": f"<Program {path}: 1 error>\n{rendered}",
        "text/html": f"<pre>{html.escape(rendered)}</pre>",
    }
    # the model alone, shown where inference stopped: its line so far, and no diagram
    assert notebook.model_bundle(program.model()) == {
        "text/plain": (
            "Broken [1, 8, 8] → ?: 336 params, 20.74 K MACs\nno diagram: shape inference stopped at an error"
        ),
        "text/html": (
            '<div class="archdsl-model">\n<p><b>Broken [1, 8, 8] → ?: 336 params, 20.74 K MACs</b></p>\n'
            "<p><em>no diagram: shape inference stopped at an error</em></p>\n</div>"
        ),
    }


def test_an_arch_error_shows_as_check_prints_it_not_as_a_traceback(tmp_path: Path) -> None:
    path = write_spec(tmp_path, BROKEN, "broken.arch")
    with pytest.raises(archdsl.ArchError) as caught:
        archdsl.load(path)
    lines = [ANSI.sub("", line) for line in notebook.arch_error_traceback(caught.value)]
    assert lines == [
        f"{path}:4:5: error[E106]: residual body changes the shape [4, 8, 8] → [8, 8, 8], so it cannot be "
        "added to its input; use residual(shortcut=project), or write its shortcut out (`shortcut { … }`)\n"
        "    4 |     residual { conv(8, kernel=3, padding=1) }\n"
        "      |     ^^^^^^^^\n"
        "note: the body ends at line 4 with [8, 8, 8]\n",
        "ArchError: 1 error (the exception's .diagnostics)",
    ]


def test_a_strict_load_failing_on_warnings_counts_them(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "model W {\n    input [1, 8, 8]\n    conv(2, kernel=3, stride=2)\n}\n")
    with pytest.raises(archdsl.ArchError) as caught:
        archdsl.load(path, strict=True)
    lines = notebook.arch_error_traceback(caught.value)
    assert "warning[W001]" in ANSI.sub("", lines[0])
    assert lines[-1] == "ArchError: 0 errors, 1 warning (the exception's .diagnostics)"


def test_a_render_error_shows_as_its_message_alone(small: str, no_dot: None) -> None:
    with pytest.raises(archdsl.RenderError) as caught:
        archdsl.render(small, "small.svg")
    assert notebook.render_error_traceback(caught.value) == [
        "RenderError: graphviz's `dot` was not found: install it with `apt-get install graphviz` "
        "(or brew install graphviz); --format dot works without it"
    ]


def test_render_returns_the_format_written_with_its_path_and_shows_the_picture(small: str) -> None:
    dot = archdsl.render(small, "small.dot")
    assert dot == "dot" and dot.path == "small.dot"
    assert repr(dot) == "Rendered('dot', path='small.dot')"
    assert dot._repr_svg_() is None and dot._repr_png_() is None
    assert repr(pickle.loads(pickle.dumps(dot))) == repr(dot)
    if shutil.which("dot") is None:
        return
    svg = archdsl.render(small, "small.svg")
    assert svg == "svg"
    shown = svg._repr_svg_()
    assert shown is not None and shown.startswith("<svg") and "linear 2" in shown
    png = archdsl.render(small, "small.png")
    assert png._repr_png_() == Path("small.png").read_bytes()
    assert Path("small.png").read_bytes().startswith(b"\x89PNG")


def test_registering_teaches_ipython_to_draw_programs_and_models(small: str) -> None:
    formatters = pytest.importorskip("IPython.core.formatters")
    display = formatters.DisplayFormatter()
    notebook.load_ipython_extension(SimpleNamespace(display_formatter=display))  # %load_ext
    assert notebook.register(SimpleNamespace(display_formatter=display))  # again: the same
    assert not notebook.register(SimpleNamespace())  # no shell: nothing to teach
    assert archdsl.ArchError._render_traceback_ is notebook.arch_error_traceback  # type: ignore[attr-defined]
    program = archdsl.load(small)
    for shown in (program, program.model()):
        data, _ = display.format(shown)
        expected = notebook.program_bundle(program) if shown is program else notebook.model_bundle(shown)
        assert data == expected
    data, _ = display.format(archdsl.summary(small))
    assert data["text/html"] == SMALL_HTML
    assert data["text/plain"] == str(archdsl.summary(small))
    # what `check` returns: a list of diagnostics, each printed as its first line
    problems = archdsl.check(small, strict=True) + archdsl.check(write_spec(Path("."), BROKEN, "broken.arch"))
    data, _ = display.format(problems)
    assert data == {"text/plain": f"[{problems[0]}]"}
    assert str(problems[0]).startswith("broken.arch:4:5: error[E106]: residual body changes the shape")


def test_registration_names_the_classes_where_they_are_defined() -> None:
    classes = {(cls.__module__, cls.__qualname__) for cls in (archdsl.Program, archdsl.ShapedModel)}
    assert classes == set(notebook.TYPES)


def test_import_archdsl_outside_ipython_loads_no_notebook_support() -> None:
    code = "import sys, archdsl; print([m for m in ('IPython', 'archdsl.notebook') if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout == "[]\n", result.stderr


def test_import_archdsl_in_ipython_registers_without_loading_a_stage() -> None:
    pytest.importorskip("IPython")
    code = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "import sys, archdsl\n"
        "printers = shell.display_formatter.mimebundle_formatter.deferred_printers\n"
        "print(sorted(printers), hasattr(archdsl.ArchError, '_render_traceback_'))\n"
        "stages = ('torch', 'archdsl.pipeline', 'archdsl.diagram', 'archdsl.table')\n"
        "print([m for m in stages if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.stdout == (
        "[('archdsl.graph', 'ShapedModel'), ('archdsl.pipeline', 'Program')] True\n[]\n"
    ), result.stderr


# --- the tour -------------------------------------------------------------------------------------


def _outputs(nb: dict, cell_id: str) -> list[dict]:
    return next(cell for cell in nb["cells"] if cell["id"] == cell_id)["outputs"]


def _stream(outputs: list[dict]) -> str:
    return "".join(o["text"] for o in outputs if o["output_type"] == "stream")


def test_the_tour_notebook_is_committed_without_outputs() -> None:
    nb = json.loads((ROOT / "docs" / "notebooks" / "tour.ipynb").read_text(encoding="utf-8"))
    code = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)


@needs_torch
@pytest.mark.slow
def test_the_tour_notebook_runs_in_a_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    # A kernel spec of our own, running this interpreter on this checkout: a fresh machine has no
    # user-wide one, and one there may run another Python.
    spec_dir = tmp_path / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    kernel = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "archdsl tests",
        "language": "python",
        "env": {"PYTHONPATH": str(ROOT), "IPYTHONDIR": str(tmp_path / "ipython")},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(kernel), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    manager = KernelManager(
        kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    )
    nb = nbformat.read(ROOT / "docs" / "notebooks" / "tour.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb, km=manager, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(cleanup_kc=True)  # shut the kernel down after, though we made its manager

    assert "error[E106]: residual body changes the shape [16, 7, 7] → [32, 7, 7]" in _stream(
        _outputs(nb, "check-broken")
    )
    (error,) = _outputs(nb, "load-broken")
    assert error["output_type"] == "error" and error["ename"] == "ArchError"
    shown = ANSI.sub("", "\n".join(error["traceback"]))
    assert "error[E106]" in shown and "    7 |     residual { conv(32, kernel=3, padding=1) relu }" in shown
    assert "^^^^^^^^" in shown and "Traceback" not in shown and "File " not in shown
    (clean,) = _outputs(nb, "check-fixed")
    assert clean["data"]["text/plain"] == "[]"
    (program,) = _outputs(nb, "show")
    assert program["data"]["text/plain"].endswith(": Tiny [1, 28, 28] → [10], 11,418 params>")
    assert "Tiny [1, 28, 28] → [10]: 11,418 params, 402.98 K MACs" in program["data"]["text/html"]
    if shutil.which("dot") is not None:
        svg = program["data"]["image/svg+xml"]
        assert svg.startswith("<svg") and "conv 3×3, 16, pad 1" in svg and "linear 10" in svg
        assert "<svg" in program["data"]["text/html"]
    (summary,) = _outputs(nb, "summary")
    assert summary["data"]["text/html"].startswith('<table class="archdsl-summary">')
    assert '<th style="text-align:right">11,418</th>' in summary["data"]["text/html"]
    assert _stream(_outputs(nb, "build")) == "(4, 10)\nTrue\n"
