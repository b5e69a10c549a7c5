"""Reliability campaigns: archdsl held to PyTorch on specs drawn at random, far more of them than the
test suite runs. `specgen` draws a spec from a seed (and fuzz inputs); the campaigns run it:

    .venv/bin/python -m campaigns.differential 10000   # the checker's shapes against PyTorch's
    .venv/bin/python -m campaigns.emit 10000           # the emitted source against the built module
    .venv/bin/python -m campaigns.fuzz 10000           # the parser and checker on mutated inputs

from the repository root. The tests run a slice of each (tests/test_reliability.py,
tests/test_emit.py) and import `campaigns.specgen`; docs/reliability.md records the full runs.
"""
