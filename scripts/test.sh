#!/usr/bin/env bash
# Tests: the unit/integration tests (incl. the widget in headless Chromium and the dispatch tests on a real
# single-node Slurm), then nbval on freshly executed smoke notebooks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
bash scripts/install_browser.sh
bash scripts/slurm.sh start
trap 'bash scripts/slurm.sh stop' EXIT
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
out=build/test_study
rm -rf "$out"
.venv/bin/python -m asymlib.study --profile smoke --output "$out" --figures "$out/figures"
.venv/bin/python -m pytest tests "$out/notebooks" --nbval-lax -p no:cacheprovider "$@"
