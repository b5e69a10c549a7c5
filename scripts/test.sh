#!/usr/bin/env bash
# The test suite, as CI runs it (README "Set-up"; scripts/install.sh makes both environments):
# every test in .venv, then again in .venv-light, which has no PyTorch. There the tests that need
# torch are skipped (`needs_torch`, or a file's `pytest.importorskip("torch")`) and the rest prove
# that checking, summaries, diagrams, docs, emit, fmt and the language server never import it.
# Arguments go to both runs (`bash scripts/test.sh tests/test_parser.py -x`).
set -uo pipefail
cd "$(dirname "$0")/.."

if .venv-light/bin/python -c 'import torch' 2>/dev/null; then
    echo "test.sh: .venv-light has torch: the run without it would prove nothing" >&2
    exit 1
fi

.venv/bin/python -m pytest -q "$@"
full=$?
echo "test.sh: again without torch, in .venv-light"
# -rfE: only failures and errors in the summary, not a line for each of the torch tests skipped
.venv-light/bin/python -m pytest -q -rfE "$@"
light=$?
# pytest's own code for the first run that failed (1 tests failed, 2 interrupted, ...)
if [ "$full" != 0 ]; then exit "$full"; fi
exit "$light"
