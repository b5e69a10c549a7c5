"""Every file archdsl writes goes through here: written beside its target, then renamed over it.

A reader (or a run killed mid-write) sees either the old file or the new one, never half of one:
`os.replace` is atomic within one file system, and the temporary file lives in the target's own
directory so the rename never crosses file systems.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import IO


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yields a temporary path to write; on success it replaces `path`, on failure it is removed.

    For writers that insist on a path of their own (`torch.save`, graphviz, matplotlib).
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(target)
    # The real suffix stays last: some writers pick their format from the file name.
    stem, suffix = os.path.splitext(base)
    fd, temporary = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{suffix}", dir=directory)
    os.close(fd)
    try:
        # mkstemp makes the file private (0600); the result gets the permissions `open` would give.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        yield temporary
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        handle.write(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_with(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], object]) -> None:
    """Calls `writer` with an open binary file; the result appears at `path` only when it returns."""
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        writer(handle)
