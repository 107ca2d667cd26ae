#!/usr/bin/env bash
# Install the headless browser that tests/test_widget_browser.py drives (Debian/Ubuntu: chromium and
# chromium-driver from apt). Idempotent. Writes build/browser-install.status:
#   "ok <path> <version>"      the browser is usable
#   "unavailable: <reason>"    it cannot be installed here (no apt-get, no root/sudo, apt failure);
#                              the browser test then skips and prints this reason.
# Exits 0 in both cases so that the test run itself reports the outcome; exits 1 only when apt-get
# reported success but no working browser came out of it.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
status=build/browser-install.status
browser=${ASYMLIB_CHROMIUM:-/usr/bin/chromium}

record_ok() {
  local version
  version=$("$browser" --version 2>/dev/null | tail -n 1)
  echo "ok $browser $version" > "$status"
  echo "[browser] $version at $browser"
}

unavailable() {
  echo "unavailable: $*" > "$status"
  echo "[browser] WARNING: cannot install Chromium: $*; tests/test_widget_browser.py will be skipped" >&2
  exit 0
}

if [ -x "$browser" ] && "$browser" --version >/dev/null 2>&1; then
  record_ok
  exit 0
fi

command -v apt-get >/dev/null 2>&1 || unavailable "no apt-get on this machine (install Chromium and set ASYMLIB_CHROMIUM)"
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    unavailable "not root and no passwordless sudo for apt-get"
  fi
fi

export DEBIAN_FRONTEND=noninteractive
log=build/browser-install.log
echo "[browser] apt-get install -y chromium chromium-driver (log: $log)"
if ! { $SUDO apt-get update -q && $SUDO apt-get install -y -q chromium chromium-driver; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  unavailable "apt-get install chromium chromium-driver failed (see $log)"
fi

if [ -x "$browser" ] && "$browser" --version >/dev/null 2>&1; then
  record_ok
  exit 0
fi
echo "unavailable: apt-get succeeded but $browser does not run" > "$status"
echo "[browser] ERROR: apt-get succeeded but $browser does not run" >&2
exit 1
