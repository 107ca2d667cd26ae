#!/usr/bin/env bash
# Main job: the smoke study end to end (notebooks 01-05), writing tables and figures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
exec .venv/bin/python -m asymlib.study --profile "${PROFILE:-smoke}" "$@"
