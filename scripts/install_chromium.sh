#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the report's system test
# (tests/system/test_report_chromium.py) and for scripts/report_screenshot.py.
#
# Idempotent: does nothing when /usr/bin/chromium already exists. Needs root or sudo and
# Debian's package archive; installs only the distribution package (no browser download).
# CI runs it from .ci/run before `make test`; locally: `sudo bash scripts/install_chromium.sh`.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    echo "chromium already installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium.sh: apt-get not found; install Chromium with your package manager" \
         "so that $CHROMIUM exists (the report system test is skipped without it)" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install_chromium.sh: run as root (or install sudo) to apt-get install chromium" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# fonts-dejavu-core: a font for the rendered text; the rest come as chromium's dependencies
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null

"$CHROMIUM" --version 2>/dev/null
