"""The one exception the training stage raises for problems a user can fix (data, settings, shapes)."""

from __future__ import annotations


class TrainError(Exception):
    """A problem the user can fix: the CLI prints the message (no traceback) and exits 1."""
