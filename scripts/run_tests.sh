#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite headless under Xvfb.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
xvfb-run -a .venv/bin/python -m pytest "$@"
