#!/usr/bin/env bash
# The browser the dashboard's tests and `make screenshots` drive: Chromium from the
# distribution's packages (Debian/Ubuntu), driven by Playwright for Python over CDP. Playwright's
# own browser builds are never downloaded. Fonts come along so that pages and screenshots
# render text the same on every machine.
#
# Does nothing when the browser is already there. Needs root or sudo to install.
set -euo pipefail

CHROMIUM="${AGORA_CHROMIUM:-/usr/bin/chromium}"
PACKAGES=(chromium fonts-dejavu-core)

if [[ -x "$CHROMIUM" ]]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: no apt-get here; install Chromium with this system's package" \
        "manager and set AGORA_CHROMIUM to its path" >&2
    exit 1
fi
as_root=()
if [[ "$(id -u)" != 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-browser: installing ${PACKAGES[*]} needs root (or sudo)" >&2
        exit 1
    fi
    as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
"$CHROMIUM" --version
