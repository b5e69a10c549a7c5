"""`python -m archdsl`: the same as the `archdsl` command."""

from .cli import run

run()
