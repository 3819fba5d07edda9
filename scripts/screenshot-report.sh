#!/usr/bin/env bash
# Screenshot of an `aiida-sseff report` HTML page in headless Chromium, for the docs (docs/user/img/).
# Usage: scripts/screenshot-report.sh report.html docs/user/img/report_diffusion.png [WIDTHxHEIGHT]
# Needs Debian's `chromium` (apt-get install chromium): a docs-only tool, not installed by install-system-deps.sh
# (chromium and its libraries are several hundred MB, and no test needs them).
set -euo pipefail
html=${1:?usage: $0 REPORT.html OUTPUT.png [WIDTHxHEIGHT]}
png=${2:?usage: $0 REPORT.html OUTPUT.png [WIDTHxHEIGHT]}
size=${3:-1200x1600}
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "chromium not found: apt-get install chromium" >&2
    exit 1
fi
# --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot="$(realpath -m "$png")" \
    --window-size="${size/x/,}" "file://$(realpath "$html")"
echo "wrote $png"
