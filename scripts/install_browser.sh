#!/usr/bin/env bash
# What the browser test of `centrifuge serve` needs besides the web extra: Playwright for Python,
# starlette's test client (httpx2) and a system Chromium. Playwright's own browser download needs
# the network; Debian's chromium-headless-shell works offline once installed. Without root or
# apt-get the browser is left out, and that one test is skipped saying why.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pip install -q playwright httpx2 2>&1 | grep -v "^WARNING: Location" || true
for b in "${CENTRIFUGE_BROWSER:-}" chromium-headless-shell chromium chromium-browser; do
  if [ -n "$b" ] && command -v "$b" >/dev/null 2>&1; then exit 0; fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends chromium-headless-shell >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 \
         && apt-get install -y -q --no-install-recommends chromium-headless-shell >/dev/null; } \
    || echo "install_browser: could not install chromium-headless-shell:" \
            "the browser test will be skipped" >&2
else
  echo "install_browser: no system Chromium, and no root or apt-get to install one:" \
       "the browser test will be skipped (apt-get install chromium-headless-shell)" >&2
fi
