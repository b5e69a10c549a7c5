"""The likely fixes that E105 and E106 suggest (`archdsl/hints.py`) are right: on random chains of
convolutions and pools that lose pixels, a spec changed as the note says checks without the error,
and a chain that no padding mends gets no note."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import archdsl

FIX = re.compile(r"`padding=(\d+)` on the \w+ at line (\d+)")


@st.composite
def window_layer(draw: st.DrawFn) -> str:
    """One layer on a line of its own: a conv or maxpool that may lose pixels, or a relu."""
    kind = draw(st.sampled_from(["conv", "conv", "maxpool", "relu"]))
    if kind == "relu":
        return "relu"
    kernel = draw(st.integers(1 if kind == "conv" else 2, 5))
    stride = draw(st.integers(1, 2))
    padding = draw(st.integers(0, kernel // 2))
    if kind == "conv":
        dilation = draw(st.integers(1, 2))
        return f"conv(4, kernel={kernel}, stride={stride}, padding={padding}, dilation={dilation})"
    return f"maxpool({kernel}, stride={stride}, padding={padding})"


def spec(construct: str, size: int, chain: list[str], other: str) -> str:
    """A model whose second part (a branch, a residual's body) is `chain`, one layer per line from
    line 5; the parts must agree."""
    lines = [
        "model Net {",
        f"    input [4, {size}, {size}]",
        f"    {construct} {{",
        f"        {other}",
        *(f"        {layer}" for layer in chain),
        "    }" if construct.startswith("residual") else "        }",
    ]
    if not construct.startswith("residual"):
        lines[3] = f"        branch a {{ {other} }}"
        lines.insert(4, "        branch b {")
        lines.append("    }")
    return "\n".join([*lines, "}", ""])


def diagnostics(text: str) -> list[archdsl.Diagnostic]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "net.arch"
        path.write_text(text, encoding="utf-8")
        return [d for d in archdsl.check(str(path)) if d.is_error]


def apply(text: str, note: str) -> str:
    lines = text.split("\n")
    for padding, line in FIX.findall(note):
        index = int(line) - 1
        lines[index] = re.sub(r"padding=\d+", f"padding={padding}", lines[index])
    return "\n".join(lines)


def notes_of(found: list[archdsl.Diagnostic], code: str) -> list[str]:
    return [
        n.message for d in found if d.code == code for n in d.notes if n.message.startswith("likely fix")
    ] + [d.message for d in found if d.code == code and "likely fix" in d.message]


@settings(max_examples=80, deadline=None)
@given(
    construct=st.sampled_from(["concat", "residual", "residual(shortcut=project)"]),
    size=st.integers(7, 20),
    chain=st.lists(window_layer(), min_size=1, max_size=4),
)
def test_a_spec_changed_as_the_likely_fix_says_checks_clean(
    construct: str, size: int, chain: list[str]
) -> None:
    other = "conv(4, kernel=1)" if construct == "concat" else "relu"
    text = spec(construct, size, chain, other)
    found = diagnostics(text)
    code = "E105" if construct == "concat" else "E106"
    hints = notes_of(found, code)
    if not hints:
        return
    assert len(hints) == 1, hints
    mended = apply(text, hints[0])
    assert mended != text
    left = diagnostics(mended)
    assert [d.code for d in left if d.code == code] == [], (text, hints[0], mended, left)


def test_a_chain_that_no_padding_mends_gets_no_note() -> None:
    # kernel 2 cannot keep its size with any padding; the note would be a guess
    found = diagnostics(spec("residual", 14, ["conv(4, kernel=2, padding=0)"], "relu"))
    assert [d.code for d in found] == ["E106"]
    assert notes_of(found, "E106") == []
    assert "use residual(shortcut=project)" in found[0].message
