#!/usr/bin/env bash
# Render an evaluation report.html in headless Chromium and save a PNG screenshot, to check
# that the self-contained page (inline CSS, data-URI charts) renders with no network.
#
#   scripts/screenshot_report.sh REPORT_HTML [OUT_PNG] [WIDTH] [HEIGHT]
#
# Needs Chromium: `apt-get install -y chromium` on Debian/Ubuntu (or set CHROMIUM=/path).
# The slow test tests/evaluation/test_report_screenshot.py runs this script.
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 REPORT_HTML [OUT_PNG] [WIDTH] [HEIGHT]" >&2
  exit 2
fi
report="$(realpath "$1")"
out="$(realpath -m "${2:-${report%.html}.png}")"
width="${3:-1280}"
height="${4:-4000}"
browser="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
if [[ -z "$browser" ]]; then
  echo "$0: Chromium not found: apt-get install -y chromium, or set CHROMIUM" >&2
  exit 1
fi
if [[ ! -f "$report" ]]; then
  echo "$0: $report: no such file" >&2
  exit 2
fi
# A throwaway profile keeps runs independent of each other and of any user profile.
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
  --no-first-run --hide-scrollbars --user-data-dir="$profile" \
  --window-size="${width},${height}" --screenshot="$out" "file://$report" >/dev/null 2>&1
test -s "$out"
echo "$out"
