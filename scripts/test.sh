#!/usr/bin/env bash
# Tests: the unit/integration tests (incl. the widget in headless Chromium), then nbval on freshly executed
# smoke notebooks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
bash scripts/install_browser.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
out=build/test_study
rm -rf "$out"
.venv/bin/python -m asymlib.study --profile smoke --output "$out" --figures "$out/figures"
exec .venv/bin/python -m pytest tests "$out/notebooks" --nbval-lax -p no:cacheprovider "$@"
