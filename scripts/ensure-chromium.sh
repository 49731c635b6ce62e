#!/usr/bin/env bash
# Makes sure a headless-capable Chromium is on the machine: the console's browser tests
# (tests/browser) drive it with Playwright, using this system browser (no browser download).
# Installs Debian's package when it is missing and we are root; otherwise says what to install
# (the browser tests then skip with that message).
set -euo pipefail
for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null; then
    exit 0
  fi
done
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "Installing Chromium (needed by the console's browser tests)..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium fonts-dejavu-core >/dev/null
  exit 0
fi
echo "Chromium not found: install your distribution's chromium package to run the browser tests." >&2
exit 0
