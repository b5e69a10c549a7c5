"""editors/vscode: the TextMate grammar scopes every token of every spec, keywords and layer
names among them, and the extension's files agree with each other and with the layer catalog."""

from __future__ import annotations

import json
import re

import pytest
from lark import Token, Tree
from textmate import Grammar

from archdsl.layers import LAYERS
from archdsl.parser import concrete_parser
from archdsl.trivia import scan

from conftest import ROOT

VSCODE = ROOT / "editors" / "vscode"
GRAMMAR = Grammar(VSCODE / "syntaxes" / "arch.tmLanguage.json")
SPECS = [
    *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "specs").glob("*.arch")),
    *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "specs" / "torchvision").glob("*.arch")),
    "tests/fixtures/fmt/layout.arch",
    "tests/fixtures/errors/shape_comments.arch",
]
KEYWORDS = {
    "IMPORT",
    "BLOCK",
    "MODEL",
    "INPUT",
    "TRAIN",
    "REPEAT",
    "CONCAT",
    "BRANCH",
    "RESIDUAL",
    "SHORTCUT",
    "GATE",
    "AS",
}


def ops(tree: Tree[Token]) -> set[tuple[int, int]]:
    """The positions of the layer (or block) name of every call statement."""
    found = set()
    for call in tree.find_data("call"):
        op = call.children[1]  # after its `name:` or `*`
        assert isinstance(op, Token)
        found.add((op.line, op.column))
    return found


@pytest.mark.parametrize("spec", SPECS)
def test_the_grammar_scopes_every_token(spec: str) -> None:
    text = (ROOT / spec).read_text(encoding="utf-8")
    scopes = GRAMMAR.tokenize(text)
    tokens = list(concrete_parser().lex(text))
    calls = ops(concrete_parser().parse(text))
    for index, token in enumerate(tokens):
        line, column = token.line - 1, token.column - 1  # type: ignore[operator]
        chars = [scopes[line][column + k] for k in range(len(token))]
        where = f"{spec}:{token.line}:{token.column} {token!r}"
        assert all(len(s) > 1 for s in chars), f"{where} has no scope"
        innermost = chars[0][-1]
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        # A keyword names a statement (`block: { … }`) or an argument (`residual(shortcut=…)`) too.
        as_name = following is not None and following.type in ("COLON", "EQUAL")
        if token.type in KEYWORDS and not as_name:
            assert innermost.startswith("keyword."), f"{where}: {innermost}"
        if token.type == "NAME" and str(token) in LAYERS and (token.line, token.column) in calls:
            assert innermost == "support.function.layer.arch", f"{where}: {innermost}"
        if token.type in ("INT", "FLOAT"):
            assert innermost == "constant.numeric.arch", f"{where}: {innermost}"
        if token.type == "STRING":
            assert any(s.startswith("string.quoted") for s in chars[0]), where
    for comment in scan(text).comments:
        line = scopes[comment.line - 1]
        assert all(
            "comment.line.number-sign.arch" in line[comment.column - 1 + k] for k in range(len(comment.text))
        )


def test_the_grammar_names_exactly_the_built_in_layers() -> None:
    grammar = json.loads((VSCODE / "syntaxes" / "arch.tmLanguage.json").read_text(encoding="utf-8"))
    match = re.fullmatch(r"\\b\((.*)\)\\b", grammar["repository"]["layer"]["match"])
    assert match is not None
    assert match.group(1).split("|") == sorted(LAYERS)


def test_keywords_used_as_names_and_shape_comments_are_scoped_as_such() -> None:
    text = (
        'block B {\n    block: { conv(4, kernel=3) }  # [4, 6, 6]  archdsl: allow W001\n    "b{i}": relu\n}\n'
    )
    scopes = GRAMMAR.tokenize(text)
    assert scopes[1][4][-1] == "entity.name.tag.label.arch"  # `block:` names a statement
    assert scopes[0][0][-1] == "keyword.declaration.arch"
    comment = text.split("\n")[1].index("[4")
    assert scopes[1][comment][-1] == "constant.numeric.shape.arch"
    directive = text.split("\n")[1].index("archdsl:")
    assert scopes[1][directive][-1] == "keyword.other.directive.allow.arch"
    assert scopes[2][6][-1] == "meta.interpolation.arch"


def test_the_extension_manifest_names_its_files() -> None:
    manifest = json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))
    (language,) = manifest["contributes"]["languages"]
    (grammar,) = manifest["contributes"]["grammars"]
    assert language["id"] == grammar["language"] == "arch" and language["extensions"] == [".arch"]
    assert grammar["scopeName"] == GRAMMAR.scope == "source.arch"
    assert (VSCODE / grammar["path"]).is_file() and (VSCODE / language["configuration"]).is_file()
    assert (VSCODE / manifest["main"]).is_file()
    configuration = json.loads((VSCODE / language["configuration"]).read_text(encoding="utf-8"))
    assert configuration["comments"] == {"lineComment": "#"}
    assert ["{", "}"] in configuration["brackets"] and ["(", ")"] in configuration["brackets"]
    source = (VSCODE / manifest["main"]).read_text(encoding="utf-8")
    assert '"lsp"' in source and "archdsl.server.command" in source
    assert manifest["contributes"]["configuration"]["properties"]["archdsl.server.command"]["default"] == [
        "archdsl",
        "lsp",
    ]
