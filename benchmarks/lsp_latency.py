"""Keystroke-to-diagnostics latency of `archdsl lsp` on a 1,000-statement spec.

A real client (tests/lsp_client.py) starts the server as a process, opens the spec that
`benchmarks/check_speed.py` generates for 1,000 layer statements, and types into it, one
incremental `didChange` per keystroke. Each keystroke is timed from the moment the client sends
it to the moment the `publishDiagnostics` for that document version arrives. That time includes
the server's debounce (`archdsl.ide.server.DEBOUNCE_S`), a full check of the document, the conversion
to LSP positions and the JSON-RPC round trip. The keystrokes alternate between edits that keep
the spec valid (a conv's width, 8 → 9 and back) and ones that break it (a stray `(`, a syntax
error) and mend it, since a broken document is what the server sees most while one types.
Between keystrokes the client waits `--pause` seconds, as a typist does. A second series types a
burst of `--burst` keystrokes with no pause and times the last one: debouncing must keep that
burst from queueing a check per keystroke.

Target: the median keystroke under 100 ms.

    .venv/bin/python benchmarks/lsp_latency.py                 # 40 keystrokes, then a burst
    .venv/bin/python benchmarks/lsp_latency.py --keystrokes 100 --statements 1000
    .venv/bin/python benchmarks/lsp_latency.py --spec specs/torchvision/vit_l_16.arch

It writes nothing but a temporary directory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from check_speed import generate_spec  # noqa: E402
from lsp_client import Client, position  # noqa: E402

TARGET_MS = 100.0


def keystrokes(text: str, count: int) -> list[tuple[int, int, int, int, str]]:
    """`count` edits as (line, start, line, end, new text), each undoing the one before in turn:
    a width changed and changed back, a stray '(' typed and deleted. The width is the generated
    spec's `conv(12, …)`, or the first number in a model of another spec (`depth=24`)."""
    lines = text.split("\n")
    if "conv(12," in text:
        row = next(i for i, line in enumerate(lines) if "conv(12," in line)
        width_at = lines[row].index("conv(12,") + len("conv(1")
    else:
        model = next(i for i, line in enumerate(lines) if line.startswith("model "))
        row = next(i for i in range(model + 1, len(lines)) if any(c.isdigit() for c in lines[i]))
        width_at = next(k for k, c in enumerate(lines[row]) if c.isdigit())
    digit = lines[row][width_at]
    other = "3" if digit != "3" else "4"
    edits = []
    for index in range(count):
        step = index % 4
        if step == 0:
            edits.append((row, width_at, row, width_at + 1, other))  # conv(13, …): still valid
        elif step == 1:
            edits.append((row, width_at, row, width_at + 1, digit))  # back to conv(12, …)
        elif step == 2:
            edits.append((row, width_at + 2, row, width_at + 2, "("))  # conv(12(, …): E001
        else:
            edits.append((row, width_at + 2, row, width_at + 3, ""))  # mended
    return edits


def send(client: Client, uri: str, version: int, edit: tuple[int, int, int, int, str]) -> float:
    start_line, start, end_line, end, text = edit
    sent = time.perf_counter()
    client.change(
        uri,
        version,
        edit={"range": {"start": position(start_line, start), "end": position(end_line, end)}, "text": text},
    )
    return sent


def arrival(client: Client, uri: str, version: int) -> tuple[float, int]:
    client.wait_for_diagnostics(uri, version)
    with client.condition:
        for arrived, params in reversed(client.published):
            if params["uri"] == uri and params.get("version") == version:
                return arrived, len(params["diagnostics"])
    raise AssertionError("unreachable")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--statements", type=int, default=1000, help="layer statements in the spec")
    parser.add_argument("--keystrokes", type=int, default=40, help="keystrokes timed one by one")
    parser.add_argument("--pause", type=float, default=0.15, help="seconds between keystrokes")
    parser.add_argument("--burst", type=int, default=20, help="keystrokes typed without a pause")
    parser.add_argument("--spec", type=Path, help="type into this spec (left unchanged) instead")
    args = parser.parse_args(argv)

    from archdsl.ide import queries as editor
    from archdsl.ide import server as lsp

    text = args.spec.read_text(encoding="utf-8") if args.spec else generate_spec(args.statements)
    with tempfile.TemporaryDirectory() as workdir:
        # A spec given is opened where it is, so that its imports resolve; edits stay in the editor.
        spec = args.spec.resolve() if args.spec else Path(workdir) / "generated.arch"
        if not args.spec:
            spec.write_text(text, encoding="utf-8")
        # The check alone, in this process, for comparison.
        checks = []
        for _ in range(5):
            started = time.perf_counter()
            editor.analyse(text, str(spec))
            checks.append(time.perf_counter() - started)

        client = Client(root=spec.parent)
        try:
            uri = client.open(spec, text)
            client.wait_for_diagnostics(uri, 1, timeout=60)
            version = 1
            latencies, found = [], []
            for edit in keystrokes(text, args.keystrokes):
                version += 1
                sent = send(client, uri, version, edit)
                arrived, count = arrival(client, uri, version)
                latencies.append(arrived - sent)
                found.append(count)
                time.sleep(args.pause)
            burst_edits = keystrokes(text, args.burst + args.burst % 2)
            first_sent = 0.0
            for edit in burst_edits[: args.burst]:
                version += 1
                sent = send(client, uri, version, edit)
                first_sent = first_sent or sent
            arrived, _ = arrival(client, uri, version)
            burst_last = arrived - sent
            checked = {p.get("version") for _, p in client.published if p["uri"] == uri}
            burst_checks = len([v for v in checked if v is not None and v > version - args.burst])
        finally:
            client.close()

    ms = sorted(1000 * t for t in latencies)
    median = statistics.median(ms)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    lines = text.count("\n")
    what = args.spec if args.spec else f"a {args.statements:,}-statement spec"
    print(f"archdsl lsp: keystroke-to-diagnostics on {what} ({lines} lines)")
    print(f"  the check alone, in process (editor.analyse): median {1000 * statistics.median(checks):.1f} ms")
    print(f"  server debounce: {1000 * lsp.DEBOUNCE_S:.0f} ms")
    print(
        f"  {len(ms)} keystrokes, {args.pause:.2f} s apart (valid and broken edits; "
        f"{min(found)}–{max(found)} diagnostics each):"
    )
    spread = f"90th percentile {p90:.1f} ms, min {ms[0]:.1f} ms, max {ms[-1]:.1f} ms"
    print(f"    median {median:.1f} ms, {spread}")
    print(
        f"  a burst of {args.burst} keystrokes without a pause: the last one's diagnostics after "
        f"{1000 * burst_last:.1f} ms ({1000 * (arrived - first_sent):.1f} ms after the first), "
        f"{burst_checks} of {args.burst} versions checked"
    )
    ok = median < TARGET_MS
    print(f"target: median under {TARGET_MS:.0f} ms: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
