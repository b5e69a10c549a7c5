"""Notebook display (a tool): in Jupyter, a loaded spec shows itself as its diagram.

Consumes what the public API returns and gives IPython's display system its representations:

- a `Program` (`archdsl.load`) and a `ShapedModel` (`program.model()`): each model's one-line
  summary (name, input → output, parameters, MACs) over its diagram, inline SVG drawn as
  `archdsl render` draws it; a program's diagnostics, as `archdsl check` prints them, in a `<pre>`;
- an `ArchError` that reaches the top of a cell: its diagnostics, each with its source line and
  caret, instead of a Python traceback; a `RenderError`: its message alone;
- a `Diagnostic` (`archdsl.check` returns a list of them) as its first line, `str(d)`.

Without graphviz's `dot` the cell says so, and how to install it, beside the summary line.

Why formatters registered from here rather than `_repr_*_` methods on those classes: `Program`
and `ShapedModel` are the analysis stage's, and may not import the diagram (a target), not even
inside a method, so they cannot draw themselves. `register` tells IPython's display formatter how
to show them by module and class *name* (`for_type_by_name`), so nothing here imports a stage
before an object is shown, and the stages know nothing of notebooks. `archdsl/__init__.py` calls
it when IPython is already imported (in a kernel it always is), which keeps `import archdsl`
cheap elsewhere; `%load_ext archdsl.notebook` does the same in a shell started after archdsl was
imported. (A `_repr_mimebundle_` on the classes calling a hook installed from here would work
too, but would put a notebook's hook into the analysis stage.) IPython reads `_render_traceback_`
off an exception, so `register` sets it on `ArchError` and `RenderError` too: the ground knows
nothing of IPython either.

`Summary` (`archdsl.summary`, an HTML table) and `diagram.Rendered` (`archdsl.render`, the picture)
are targets, free to format themselves: they carry their own `_repr_html_` / `_repr_svg_` /
`_repr_png_`, which any frontend reads, registered or not.
"""

from __future__ import annotations

import html
import shutil
import sys
from typing import TYPE_CHECKING, Any

from .errors import ArchError, Diagnostic, RenderError, SourceCache, render

if TYPE_CHECKING:
    from .graph import ShapedModel
    from .pipeline import Program

#: What a cell shows in place of a diagram when graphviz's `dot` is not on the PATH.
NO_DOT = (
    "no diagram: graphviz's `dot` program was not found on the PATH. Install graphviz "
    "(`apt-get install graphviz`, `brew install graphviz` or `conda install graphviz`) "
    "and show it again."
)

Bundle = dict[str, str]


def model_bundle(model: ShapedModel) -> Bundle:
    """A model as a notebook shows it: text/plain, the summary line; text/html, the line over the
    diagram (or the message saying why there is none, in text/plain too); image/svg+xml, the
    diagram alone."""
    from .table import model_line

    line = model_line(model)
    svg, why = _draw(model)
    if svg is None:
        return {"text/plain": f"{line}\n{why}", "text/html": _figure(line, _why(why))}
    return {"text/plain": line, "text/html": _figure(line, svg), "image/svg+xml": svg}


def program_bundle(program: Program) -> Bundle:
    """A program as a notebook shows it: its diagnostics as `archdsl check` prints them, then each
    model that inference completed as `model_bundle` shows it (image/svg+xml too where that is one
    model, drawn); a model stopped by an error is left to its diagnostics."""
    from .table import model_line

    html_parts: list[str] = []
    texts = [repr(program)]
    if program.diagnostics:
        sources = SourceCache(program.sources)
        rendered = "\n\n".join(render(d, sources) for d in program.diagnostics)
        html_parts.append(f"<pre>{html.escape(rendered)}</pre>")
        texts.append(rendered)
    svgs: list[str] = []
    complete = [model for model in program.models if model.complete]
    for model in complete:
        svg, why = _draw(model)
        html_parts.append(_figure(model_line(model), svg if svg is not None else _why(why)))
        if svg is not None:
            svgs.append(svg)
        elif why not in texts:  # said once, not for each model
            texts.append(why)
    result = {"text/plain": "\n".join(texts), "text/html": "\n".join(html_parts)}
    if len(complete) == 1 and svgs:
        result["image/svg+xml"] = svgs[0]
    return result


def _draw(model: ShapedModel) -> tuple[str | None, str]:
    """The model's diagram as an `<svg>` element, or None and why there is none."""
    from .diagram import dot_source, svg

    if not model.complete:
        return None, "no diagram: shape inference stopped at an error"
    if shutil.which("dot") is None:
        return None, NO_DOT
    try:
        return svg(dot_source(model)), ""
    except RenderError as exc:
        return None, f"no diagram: {exc}"


def _why(text: str) -> str:
    """Why there is no diagram, as HTML: escaped, its `backquoted` parts as <code>."""
    pieces = html.escape(text).split("`")
    return (
        "<p><em>" + "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces)) + "</em></p>"
    )


def _figure(line: str, body: str) -> str:
    return f'<div class="archdsl-model">\n<p><b>{html.escape(line)}</b></p>\n{body}\n</div>'


# --- errors ---------------------------------------------------------------------------------------


def arch_error_traceback(error: ArchError) -> list[str]:
    """An `ArchError` as a cell shows it (IPython's `_render_traceback_`): each diagnostic as
    `archdsl check` prints it, coloured as on a terminal, then a line naming the exception."""
    sources = SourceCache()
    lines = [render(d, sources, color=True) + "\n" for d in error.diagnostics]
    errors = sum(d.is_error for d in error.diagnostics)
    warnings = len(error.diagnostics) - errors  # what `load(strict=True)` fails on
    counts = [_plural(errors, "error")] + ([_plural(warnings, "warning")] if warnings else [])
    lines.append(f"ArchError: {', '.join(counts)} (the exception's .diagnostics)")
    return lines


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def render_error_traceback(error: RenderError) -> list[str]:
    return [f"RenderError: {error}"]


# --- registration ---------------------------------------------------------------------------------

#: The classes drawn here, by where they are defined (`type.__module__`, `type.__qualname__`):
#: named, not imported, so that registering loads no stage; tests/test_notebook.py holds them true.
TYPES = {
    ("archdsl.pipeline", "Program"): program_bundle,
    ("archdsl.graph", "ShapedModel"): model_bundle,
}


def register(shell: Any = None) -> bool:
    """Teaches IPython's display (the running shell's, or `shell`'s) to show archdsl's objects;
    False where there is no shell. Registering again changes nothing."""
    if shell is None:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
    formatter = getattr(getattr(shell, "display_formatter", None), "mimebundle_formatter", None)
    if formatter is None:
        return False
    for (module, name), function in TYPES.items():
        formatter.for_type_by_name(module, name, function)
    # text/plain's pretty printer also prints each item of a list (what `check` returns) with it
    shell.display_formatter.formatters["text/plain"].for_type_by_name(
        "archdsl.errors", "Diagnostic", _pretty_diagnostic
    )
    # set here, not in errors.py: the ground knows nothing of IPython (the module docstring)
    ArchError._render_traceback_ = arch_error_traceback  # type: ignore[attr-defined]
    RenderError._render_traceback_ = render_error_traceback  # type: ignore[attr-defined]
    return True


def _pretty_diagnostic(diagnostic: Diagnostic, printer: Any, cycle: bool) -> None:
    printer.text(str(diagnostic))


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext archdsl.notebook`: registers with that shell."""
    register(ipython)
