"""`archdsl import`'s one error, and where in the user's code it points.

`ImportFailed` says which op the language cannot write, and the line of the module's `forward`
that computes it: read from the stack fx records on each node (`_where`), or from a traceback
(`_where_raised`), skipping torch's frames and the importer's own.
"""

from __future__ import annotations

import os
import re
import traceback
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import fx


class ImportFailed(Exception):
    """The module cannot be written as a spec; the message says which op, where, and why."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _inside_torch(filename: str) -> bool:
    """Whether a frame is torch's (or this importer's, which traces): not the user's code."""
    import torch

    path = os.path.abspath(filename)
    here = os.path.dirname(os.path.abspath(__file__))
    return path.startswith(os.path.dirname(torch.__file__) + os.sep) or path.startswith(here + os.sep)


def _user_frame(frames: list[tuple[str, int, str]]) -> str:
    """' (file:line: `code`)' for the last frame outside torch: the module's own forward."""
    for filename, line, code in reversed(frames):
        if not _inside_torch(filename):
            return f" ({filename}:{line}: `{code.strip()}`)" if code else f" ({filename}:{line})"
    return ""


def _where_raised(exc: BaseException) -> str:
    frames = [(f.filename, f.lineno or 0, f.line or "") for f in traceback.extract_tb(exc.__traceback__)]
    return _user_frame(frames)


_FRAME = re.compile(r'File "([^"]+)", line (\d+), in ([^\n]*)\n(?: +([^\n]*))?')


def _frames(node: fx.Node) -> list[tuple[str, int, str, str]]:
    """The frames of the stack that made `node`, outermost first: file, line, function, code."""
    cached = node.meta.get("archdsl_frames")
    if cached is None:
        text = node.stack_trace or ""
        cached = [(m.group(1), int(m.group(2)), m.group(3), m.group(4) or "") for m in _FRAME.finditer(text)]
        node.meta["archdsl_frames"] = cached
    return cached


def _where(node: fx.Node) -> str:
    return _user_frame([(f, line, code) for f, line, _, code in _frames(node)])


def _segments(node: fx.Node) -> list[list[tuple[str, int, str, str]]]:
    """The user's frames of the stack that made `node`, by module call: the root's `forward` (and
    what it calls) first, then each submodule called on the way in."""
    cached = node.meta.get("archdsl_segments")
    if cached is None:
        cached = [[]]
        for frame in _frames(node):
            filename, _, function, _ = frame
            if function == "_call_impl" and filename.replace(os.sep, "/").endswith(
                "torch/nn/modules/module.py"
            ):
                cached.append([])
            elif not _inside_torch(filename):
                cached[-1].append(frame)
        node.meta["archdsl_segments"] = cached
    return cached
