#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the demo on the bundled noisy nuclei sample.
# Headless it writes self2seg-demo/{mask.tif,denoised.tif,run.json}; pass --gui to open napari afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/self2seg demo "$@"
