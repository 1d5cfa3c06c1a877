# shellcheck shell=bash
# Makes sure the checkout page's browser tests can drive a real Chromium:
#
#   source scripts/lib/chromium.sh; ensure_chromium
#
# Uses CHROMIUM and CHROMEDRIVER if set, else /usr/bin/chromium and
# /usr/bin/chromedriver, else installs Debian's chromium and chromium-driver
# packages with apt-get (needs root or sudo). Each test starts its own
# chromedriver on a free port and its own headless browser profile.

ensure_chromium() {
    local browser="${CHROMIUM:-/usr/bin/chromium}"
    local driver="${CHROMEDRIVER:-/usr/bin/chromedriver}"
    if [ -x "$browser" ] && [ -x "$driver" ]; then
        return 0
    fi
    printf '[chromium] no chromium/chromedriver installed; installing them with apt-get\n' >&2
    local run_as_root=()
    if [ "$(id -u)" -ne 0 ]; then run_as_root=(sudo); fi
    "${run_as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${run_as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
}
