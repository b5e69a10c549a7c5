"""A user's own layer plugs in through the `archdsl.layers` entry point, the interface the built-in
layers use: checked without torch, built, emitted, and refused when it takes a name in use."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from archdsl import layers
from archdsl.grammar import keywords
from archdsl.layers import LAYERS, PluginError, Pointwise, register
from archdsl.parser import lark_parser

from conftest import ROOT, needs_torch

PLUGIN = ROOT / "tests" / "layer_plugin"

SPEC = """model Swishy {
    input [3, 8, 8]
    conv(4, kernel=3) swish(beta=2) flatten   # [144]
    linear(2)
}
"""


def install_entry_point(site: Path, value: str) -> None:
    """What `pip install` of a package declaring the entry point leaves in site-packages."""
    info = site / "archdsl_swish-0.1.dist-info"
    info.mkdir(parents=True)
    metadata = "Metadata-Version: 2.1\nName: archdsl-swish\nVersion: 0.1\n"
    (info / "METADATA").write_text(metadata, encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[archdsl.layers]\nswish = {value}\n", encoding="utf-8")


def run(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(site), str(PLUGIN), str(ROOT)])
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    install_entry_point(tmp_path / "site", "swish_layer:SwishLayer")
    path = tmp_path / "swishy.arch"
    path.write_text(SPEC, encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_plugin_layer_is_checked_without_importing_torch(spec: Path) -> None:
    code = (
        "import json, sys, archdsl\n"
        "model = archdsl.load('swishy.arch').model()\n"
        "print(json.dumps([model.output, model.params, 'torch' in sys.modules]))\n"
    )
    result = run(spec.parent / "site", "-c", code, cwd=spec.parent)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [[2], 4 * 3 * 9 + 4 + 144 * 2 + 2, False]
    summary = run(spec.parent / "site", "-m", "archdsl", "summary", "swishy.arch", cwd=spec.parent)
    assert "swish β=2" in summary.stdout


@pytest.mark.slow
@needs_torch
def test_a_plugin_layer_builds_and_emits_the_plugins_module(spec: Path) -> None:
    code = (
        "import torch, archdsl\n"
        "net = archdsl.build('swishy.arch').eval()\n"
        "torch.manual_seed(0)\n"
        "x = torch.randn(2, 3, 8, 8)\n"
        "conv = net[0](x)\n"
        "assert torch.equal(net[1](conv), conv * torch.sigmoid(2 * conv))\n"
        "namespace = {}\n"
        "exec(archdsl.emit('swishy.arch'), namespace)\n"  # the emitted module imports swish_torch
        "emitted = namespace['Swishy']().eval()\n"
        "emitted.load_state_dict(net.state_dict(), strict=True)\n"
        "assert torch.equal(emitted(x), net(x))\n"
        "print('ok')\n"
    )
    result = run(spec.parent / "site", "-c", code, cwd=spec.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("plugin", "refusal"),
    [
        ("Clash", "the layer name 'relu' (from swish_layer:Clash) is already taken"),
        (
            "Keyword",
            "the layer name 'gate' (from swish_layer:Keyword) is a keyword of the language, so no "
            "statement could call it",
        ),
    ],
    ids=["a built-in layer's name", "a keyword"],
)
def test_a_plugin_may_not_take_a_name_in_use(tmp_path: Path, plugin: str, refusal: str) -> None:
    install_entry_point(tmp_path / "site", f"swish_layer:{plugin}")
    (tmp_path / "uses.arch").write_text("model M { input [4] swish }\n", encoding="utf-8")
    result = run(tmp_path / "site", "-m", "archdsl", "check", "uses.arch", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"archdsl: error: {refusal}\n"


def grammar_keywords() -> frozenset[str]:
    """The keywords as lark reads the grammar: its string terminals that are words (read here on
    purpose without `archdsl.grammar`, so a reader that drifts from lark fails)."""
    return frozenset(
        terminal.pattern.value
        for terminal in lark_parser().terminals
        if terminal.pattern.type == "str" and terminal.pattern.value.isidentifier()
    )


@pytest.mark.parametrize("word", sorted(grammar_keywords()))
def test_no_layer_may_be_named_after_a_keyword(word: str) -> None:
    layer = type("Keyword", (Pointwise,), {"name": word})
    with pytest.raises(PluginError) as refused:
        register(layer, origin="mypkg.arch:Keyword")
    assert str(refused.value) == (
        f"the layer name '{word}' (from mypkg.arch:Keyword) is a keyword of the language, so no "
        "statement could call it"
    )
    assert word not in LAYERS


def test_the_keywords_a_layer_may_not_take_are_the_grammars() -> None:
    assert {"gate", "shortcut", "as", "true", "false"} <= layers.KEYWORDS
    assert layers.KEYWORDS == grammar_keywords() == keywords()


@pytest.mark.slow
def test_no_module_keeps_a_second_list_of_the_keywords() -> None:
    # A copy drifts (one lacked `gate` and `shortcut`): a set, list or tuple spelling out most of
    # the keywords is one. `archdsl.grammar.keywords()` is where every stage reads them.
    words = grammar_keywords()
    copies = []
    for path in sorted((ROOT / "archdsl").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Set, ast.List, ast.Tuple)):
                spelled = {e.value for e in node.elts if isinstance(e, ast.Constant)} & words
                if len(spelled) >= len(words) * 3 // 4:
                    copies.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert copies == []


@pytest.mark.slow
def test_a_plugin_that_fails_to_import_is_a_clear_error(tmp_path: Path) -> None:
    install_entry_point(tmp_path / "site", "no_such_module:Layer")
    (tmp_path / "uses.arch").write_text("model M { input [4] swish }\n", encoding="utf-8")
    result = run(tmp_path / "site", "-m", "archdsl", "check", "uses.arch", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "archdsl: error: the archdsl layer plugin 'swish' (no_such_module:Layer) failed to load: "
        "No module named 'no_such_module'\n"
    )
