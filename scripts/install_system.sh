#!/usr/bin/env bash
# Install the Debian packages the project needs, only those that are missing (idempotent, no apt-get update when
# nothing is missing).  Never removes anything: removing packages can cascade through libopenmpi and take pw.x.
set -euo pipefail
PACKAGES=(quantum-espresso quantum-espresso-data debootstrap graphviz)
# Headless browser of the web view's test (driven by playwright; `playwright install` cannot download here).
PACKAGES+=(chromium)
source "$(dirname "$0")/apt_missing.sh"
apt_install_missing system "${PACKAGES[@]}"
command -v pw.x >/dev/null || { echo "system: pw.x is still missing after installing quantum-espresso" >&2; exit 1; }
[ -d /usr/share/espresso/pseudo ] || { echo "system: /usr/share/espresso/pseudo is missing" >&2; exit 1; }
