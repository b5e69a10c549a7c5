"""docs/language.md stays true: its examples check, its layer sections are the ones the package's
reference renders (`archdsl.layers.reference`, which hover shows), its other tables match the layer
catalog, and it explains every diagnostic code."""

from __future__ import annotations

import re

import pytest

from archdsl.codes import markdown_table
from archdsl.layers import LAYERS, RESIDUAL, Layer, Signature
from archdsl.layers.reference import BEGIN, END, argument_table, markdown, reference, tabled
from archdsl.loader import Loader
from archdsl.pipeline import compile_file

from conftest import ROOT

PATH = ROOT / "docs" / "language.md"
LANGUAGE = PATH.read_text(encoding="utf-8")
EXAMPLES = re.findall(r"```arch\n(.*?)```", LANGUAGE, flags=re.S)
#: Layers whose section shows their twin's table: the same arguments with the same defaults.
TWINS = {
    "adaptivemaxpool": "adaptiveavgpool",
    "dropout2d": "dropout",
    "layernorm2d": "layernorm",
    "logsoftmax": "softmax",
}


@pytest.mark.parametrize("number", range(len(EXAMPLES)))
def test_every_arch_example_checks_clean(number: int) -> None:
    loader = Loader()
    loader.add_text(EXAMPLES[number], f"example{number}.arch")
    program = compile_file(f"example{number}.arch", loader=loader)
    assert program.diagnostics == []
    assert program.models and all(model.complete for model in program.models)


def test_the_layer_sections_are_the_ones_the_reference_renders(request: pytest.FixtureRequest) -> None:
    # docs/language.md's per-layer sections are rendered from archdsl/layers/docs/*.md, their tables
    # from the catalog's signatures: edit those, then `pytest --update-goldens` rewrites the page.
    shown = re.search(rf"^{re.escape(BEGIN)}\n.*?^{re.escape(END)}\n", LANGUAGE, flags=re.M | re.S)
    assert shown is not None, f"{PATH} lost its layer reference markers"
    if request.config.getoption("--update-goldens"):
        PATH.write_text(LANGUAGE.replace(shown.group(), markdown()), encoding="utf-8")
    else:
        assert shown.group() == markdown(), f"{PATH}'s layer sections differ (pytest --update-goldens)"


@pytest.mark.parametrize(
    "spec", [spec for spec in LAYERS.values() if spec.args] + [RESIDUAL], ids=lambda s: s.name
)
def test_argument_table_matches_the_catalog(spec: Layer | Signature) -> None:
    # a table the reference renders is the catalog's by construction; the joins (`add`, `cat`, …) and
    # `residual` are documented with the values and composites, their tables written out there
    if spec.name in TWINS:
        assert spec.name not in tabled() and TWINS[spec.name] in tabled()
        twin = LAYERS[TWINS[spec.name]]
        signature = [(a.name, a.shown_default) for a in spec.args]
        assert signature == [(a.name, a.shown_default) for a in twin.args]
    elif spec.name not in tabled():
        assert argument_table(spec) + "\n" in LANGUAGE


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_layer_is_documented(name: str) -> None:
    assert re.search(rf"`{name}[`(]|^###.*\b{name}\b", LANGUAGE, flags=re.M)
    # and hover shows its section of the reference, the joins' aside
    if name not in ("add", "mul", "cat", "split"):
        section = reference(name)
        assert section is not None and section in LANGUAGE


def test_the_diagnostics_table_is_the_one_the_code_table_renders() -> None:
    # docs/language.md holds a copy of `archdsl.codes`' table, row for row: a code added, dropped or
    # reworded there and not here (or the reverse) fails. Paste `markdown_table()`'s text to fix it.
    shown = re.search(r"^\| code \| meaning \|\n(?:\|.*\n)*", LANGUAGE, flags=re.M)
    assert shown is not None
    assert shown.group() == markdown_table()
