"""`archdsl lsp` end to end: a real client over stdio (tests/lsp_client.py) against the server
process, for every feature, a spec typed character by character, and fuzzed edits."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsp_client import Client, position

import archdsl
from archdsl.fmt import format_text
from campaigns.specgen import FRAGMENTS

from conftest import ROOT

pytest.importorskip("pygls")  # the server's, in the process the client starts

LENET = ROOT / "specs" / "lenet5.arch"


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    connection = Client()
    yield connection
    assert connection.close() == 0


def expected(path: Path) -> list[dict[str, Any]]:
    """What `archdsl check` reports for `path`, as the LSP diagnostics it must publish."""
    found = []
    for d in archdsl.check(path):
        if d.file != str(path):
            continue
        line = (d.line or 1) - 1
        found.append(
            {
                "range": [line, (d.column or 1) - 1, (d.end_line or 1) - 1, (d.end_column or 1) - 1]
                if d.line
                else [0, 0, 0, 0],
                "code": d.code,
                "severity": 1 if d.is_error else 2,
                "message": d.message,
                "notes": [n.message for n in d.notes],
            }
        )
    return found


def received(diagnostics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for d in diagnostics:
        assert d["source"] == "archdsl"
        start, end = d["range"]["start"], d["range"]["end"]
        found.append(
            {
                "range": [start["line"], start["character"], end["line"], end["character"]],
                "code": d["code"],
                "severity": d["severity"],
                "message": d["message"],
                "notes": [r["message"] for r in d.get("relatedInformation") or []],
            }
        )
    return found


FIXTURES = sorted((ROOT / "tests" / "fixtures" / "errors").glob("*.arch"))


@pytest.mark.slow
@pytest.mark.parametrize("spec", [LENET, ROOT / "specs" / "alexnet.arch", *FIXTURES], ids=lambda p: p.stem)
def test_diagnostics_are_those_of_check_at_the_same_positions(client: Client, spec: Path) -> None:
    if spec.read_bytes().decode("utf-8", "replace") != spec.read_text(encoding="utf-8", errors="ignore"):
        pytest.skip("not UTF-8: an editor cannot open it as text")
    uri = client.open(spec, spec.read_text(encoding="utf-8"))
    assert received(client.wait_for_diagnostics(uri, 1)) == expected(spec)
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})


@pytest.mark.slow
def test_positions_are_counted_in_the_clients_code_units(tmp_path: Path) -> None:
    spec = tmp_path / "wide.arch"
    spec.write_text('model M {\n    input [1, 4, 4]\n    "é😀": conv(2, kernel=9)\n}\n', encoding="utf-8")
    (diagnostic,) = archdsl.check(spec)
    assert (diagnostic.column, diagnostic.end_column) == (5, 28)  # characters
    for encodings, columns in ((None, (4, 28)), (["utf-32"], (4, 27)), (["utf-8"], (4, 31))):
        connection = Client(encodings=encodings, root=tmp_path)
        try:
            uri = connection.open(spec)
            (published,) = connection.wait_for_diagnostics(uri, 1)
            assert (
                published["range"]["start"]["character"],
                published["range"]["end"]["character"],
            ) == columns
            hover = connection.request(
                "textDocument/hover", {"textDocument": {"uri": uri}, "position": position(2, columns[1] - 16)}
            )
            assert hover is not None and "conv" in hover["contents"]["value"]
        finally:
            connection.close()


def hover_text(client: Client, uri: str, line: int, character: int) -> str:
    answer = client.request(
        "textDocument/hover", {"textDocument": {"uri": uri}, "position": position(line, character)}
    )
    assert answer is not None
    assert answer["contents"]["kind"] == "markdown"
    return str(answer["contents"]["value"])


def test_hover_gives_shape_parameters_macs_and_receptive_field(client: Client) -> None:
    uri = client.open(LENET)
    client.wait_for_diagnostics(uri, 1)
    text = hover_text(client, uri, 5, 8)  # `conv(16, kernel=5)`, line 6
    assert "**[16, 10, 10]** (from [6, 14, 14])" in text
    assert "2,416 parameters, 240,000 MACs, receptive field 14×14, stride 2" in text
    assert "### conv" in text and "| `kernel` | required |" in text  # the layer's reference, on its name
    on_arguments = hover_text(client, uri, 5, 15)
    assert "[16, 10, 10]" in on_arguments and "### conv" not in on_arguments


def test_hover_on_a_block_call_gives_its_signature_and_docs(client: Client, tmp_path: Path) -> None:
    spec = tmp_path / "blocks.arch"
    spec.write_text(
        "# Two convolutions, the second one strided.\n"
        "block Down(width: int, stride: int = 2) {\n"
        "    conv(width, kernel=3, padding=1) relu conv(width, kernel=3, stride=stride, padding=1)\n"
        "}\n\n"
        "model M {\n    input [3, 16, 16]\n    d: Down(8)\n}\n",
        encoding="utf-8",
    )
    uri = client.open(spec)
    client.wait_for_diagnostics(uri, 1)
    text = hover_text(client, uri, 7, 8)
    assert "**[8, 8, 8]**" in text
    assert "block Down(width: int, stride: int = 2)" in text
    assert "Two convolutions, the second one strided." in text
    # Inside the block, a statement has a shape at each call.
    assert "**[8, 8, 8]** (from [8, 16, 16])" in hover_text(client, uri, 2, 45)


def test_inlay_hints_give_each_statement_lines_shape(client: Client, tmp_path: Path) -> None:
    spec = tmp_path / "hints.arch"
    spec.write_text(
        "model M {\n    input [1, 28, 28]\n    conv(6, kernel=5, padding=2) tanh\n"
        "    avgpool(2)  # [6, 14, 14]\n    flatten linear(10)\n}\n",
        encoding="utf-8",
    )
    uri = client.open(spec)
    client.wait_for_diagnostics(uri, 1)
    hints = client.request(
        "textDocument/inlayHint",
        {"textDocument": {"uri": uri}, "range": {"start": position(0, 0), "end": position(6, 0)}},
    )
    found = [(h["position"]["line"], h["position"]["character"], h["label"]) for h in hints]
    # The avgpool line says its shape in a comment already.
    assert found == [(2, 37, "[6, 28, 28]"), (4, 22, "[10]")]


def test_definition_goes_to_the_block_and_to_the_imported_file(client: Client) -> None:
    zoo = ROOT / "specs" / "torchvision" / "resnext50_32x4d.arch"
    uri = client.open(zoo)
    client.wait_for_diagnostics(uri, 1)
    lines = zoo.read_text(encoding="utf-8").split("\n")
    (importing,) = [i for i, line in enumerate(lines) if line.startswith("import")]
    target = client.request(
        "textDocument/definition", {"textDocument": {"uri": uri}, "position": position(importing, 10)}
    )
    assert target["uri"] == (zoo.parent / "resnet50.arch").resolve().as_uri()
    (calling,) = [i for i, line in enumerate(lines) if "layer1:" in line]
    column = lines[calling].index("Layer(") + 2
    target = client.request(
        "textDocument/definition", {"textDocument": {"uri": uri}, "position": position(calling, column)}
    )
    block_file = (zoo.parent / "resnet50.arch").resolve()
    defined = [
        i for i, line in enumerate(block_file.read_text().split("\n")) if line.startswith("block Layer(")
    ]
    assert target["uri"] == block_file.as_uri() and target["range"]["start"]["line"] == defined[0]


def labels(client: Client, uri: str, line: int, character: int) -> dict[str, dict[str, Any]]:
    answer = client.request(
        "textDocument/completion", {"textDocument": {"uri": uri}, "position": position(line, character)}
    )
    return {item["label"]: item for item in answer["items"]}


def test_completion_offers_layers_blocks_keywords_and_arguments(client: Client, tmp_path: Path) -> None:
    spec = tmp_path / "complete.arch"
    text = (
        "block Stem(width: int = 16) {\n    conv(width, kernel=3) relu\n}\n\n"
        "model M {\n    input [3, 8, 8]\n    \n}\n"
    )
    spec.write_text(text, encoding="utf-8")
    uri = client.open(spec)
    client.wait_for_diagnostics(uri, 1)
    body = labels(client, uri, 6, 4)
    assert {"conv", "relu", "linear", "Stem", "repeat", "concat", "residual", "gate", "train"} <= set(body)
    assert body["conv"]["detail"].startswith("conv(out, kernel, stride=1, padding=0")
    assert body["Stem"]["detail"] == "block Stem(width: int = 16)"
    client.change(uri, 2, text.replace("    \n}", "    conv(8, kernel=3, \n}"))
    arguments = labels(client, uri, 6, 24)
    assert "kernel=" not in arguments and {"stride=", "padding=", "groups=", "bias="} <= set(arguments)
    assert arguments["stride="]["detail"] == "stride (default 1)"
    client.change(uri, 3, text.replace("    \n}", "    Stem(\n}"))
    assert set(labels(client, uri, 6, 9)) == {"width="}
    assert set(labels(client, uri, 0, 0)) == {"model", "block", "import"}


def test_document_symbols_are_models_blocks_and_named_statements(client: Client) -> None:
    spec = ROOT / "specs" / "resnet18.arch"
    uri = client.open(spec)
    client.wait_for_diagnostics(uri, 1)
    symbols = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    assert [s["name"] for s in symbols] == ["Basic", "Down", "Stage", "ResNet18"]
    model = symbols[-1]
    assert [c["name"] for c in model["children"]][:5] == ["conv1", "bn1", "relu", "maxpool", "layer1"]
    assert model["range"]["end"]["line"] > model["range"]["start"]["line"]


def test_formatting_gives_the_text_fmt_gives(client: Client, tmp_path: Path) -> None:
    spec = tmp_path / "messy.arch"
    messy = "model M{input [1,2,2]\nrelu ;tanh}\n"
    spec.write_text(messy, encoding="utf-8")
    uri = client.open(spec)
    client.wait_for_diagnostics(uri, 1)
    options = {"tabSize": 4, "insertSpaces": True}
    (edit,) = client.request("textDocument/formatting", {"textDocument": {"uri": uri}, "options": options})
    assert edit["newText"] == format_text(messy)
    assert edit["range"]["start"] == position(0, 0) and edit["range"]["end"] == position(2, 0)
    client.change(uri, 2, "model M { conv( }")
    assert (
        client.request("textDocument/formatting", {"textDocument": {"uri": uri}, "options": options}) is None
    )


def test_an_open_buffer_is_what_its_importers_see(client: Client, tmp_path: Path) -> None:
    blocks, main = tmp_path / "blocks.arch", tmp_path / "main.arch"
    blocks.write_text("block B { conv(4, kernel=3) }\n", encoding="utf-8")
    main.write_text('import "blocks.arch"\nmodel M {\n    input [1, 8, 8]\n    B()\n}\n', encoding="utf-8")
    main_uri = client.open(main)
    assert client.wait_for_diagnostics(main_uri, 1) == []
    blocks_uri = client.open(blocks)
    client.wait_for_diagnostics(blocks_uri, 1)
    client.change(blocks_uri, 2, "block B { conv(4, kernel=30) }\n")
    # The error is in blocks.arch, found by main.arch's check against the unsaved buffer.
    client.wait_until(lambda: any(d["code"] == "E101" for d in client.diagnostics.get(blocks_uri, [])))
    (error,) = client.diagnostics[blocks_uri]
    assert error["range"]["start"] == position(0, 10)
    client.change(blocks_uri, 3, "block B { conv(4, kernel=3) }\n")
    client.wait_until(lambda: client.diagnostics.get(blocks_uri) == [])


# --- typing, and fuzzed edits ----------------------------------------------------------------------


def _end_of(text: str) -> dict[str, int]:
    lines = text.split("\n")
    return position(len(lines) - 1, len(lines[-1]))


def test_typing_a_spec_character_by_character(client: Client, tmp_path: Path) -> None:
    target = LENET.read_text(encoding="utf-8")
    spec = tmp_path / "typed.arch"
    uri = client.open(spec, "")
    typed, version = "", 1
    for index, char in enumerate(target):
        version += 1
        at = _end_of(typed)
        client.change(uri, version, edit={"range": {"start": at, "end": at}, "text": char})
        typed += char
        if index % 40 == 0:  # requests on the half-typed document, answered throughout
            lines = typed.split("\n")
            where = position(len(lines) - 1, len(lines[-1]))
            labels(client, uri, where["line"], where["character"])
            client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": where})
            client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
            client.request(
                "textDocument/inlayHint",
                {"textDocument": {"uri": uri}, "range": {"start": position(0, 0), "end": where}},
            )
            # A pause in the typing: the half-typed document's diagnostics come.
            client.wait_for_diagnostics(uri, version)
    spec.write_text(typed, encoding="utf-8")
    assert received(client.wait_for_diagnostics(uri, version)) == expected(spec)
    versions = {p.get("version") for _, p in client.published if p["uri"] == uri}
    assert len(versions) >= len(target) // 40  # diagnostics came throughout, not only at the end


def test_fuzzed_edits_never_break_the_server(client: Client, tmp_path: Path) -> None:
    rng = random.Random(7)
    text = (ROOT / "specs" / "googlenet_mini.arch").read_text(encoding="utf-8")
    spec = tmp_path / "fuzzed.arch"
    uri = client.open(spec, text)
    version = 1
    pieces = [*FRAGMENTS, "\n", "😀", "#", '"']
    for step in range(120):
        start, end = sorted(rng.randrange(len(text) + 1) for _ in range(2))
        end = min(end, start + rng.randint(0, 12))
        insert = rng.choice(pieces) if rng.random() < 0.7 else ""
        lines_before = text[:start].split("\n")
        lines_end = text[:end].split("\n")
        edit = {
            "range": {
                "start": position(len(lines_before) - 1, len(lines_before[-1].encode("utf-16-le")) // 2),
                "end": position(len(lines_end) - 1, len(lines_end[-1].encode("utf-16-le")) // 2),
            },
            "text": insert,
        }
        text = text[:start] + insert + text[end:]
        version += 1
        client.change(uri, version, edit=edit)
        if step % 10 == 0:
            line = rng.randrange(len(text.split("\n")))
            where = position(line, rng.randrange(20))
            for method in ("textDocument/hover", "textDocument/completion", "textDocument/definition"):
                client.request(method, {"textDocument": {"uri": uri}, "position": where})
            client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
            client.request(
                "textDocument/formatting",
                {"textDocument": {"uri": uri}, "options": {"tabSize": 4, "insertSpaces": True}},
            )
    spec.write_text(text, encoding="utf-8")
    assert received(client.wait_for_diagnostics(uri, version)) == expected(spec)
    assert b"Traceback" not in b"".join(client.stderr)


@pytest.mark.slow
def test_the_latency_benchmark_runs() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "benchmarks/lsp_latency.py", "--statements", "100", "--keystrokes", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "keystroke-to-diagnostics on a 100-statement spec" in result.stdout
