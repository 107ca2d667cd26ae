#!/usr/bin/env bash
# Create or refresh the project environment in .venv/ (idempotent; reinstalls only when pyproject.toml changes).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[env] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.asymlib-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[env] installing asymlib with all extras (pyproject.toml: notebooks, cluster, test) into .venv"
  # A machine-wide pip configuration may add find-links with CPU-only torch builds that PyPI's torchvision
  # cannot load; install from the configured index (PIP_INDEX_URL is still honoured) without it.
  env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null .venv/bin/python -m pip install --disable-pip-version-check -q -e ".[all]"
  echo "$want" > "$stamp"
fi
