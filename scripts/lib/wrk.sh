# shellcheck shell=bash
# Makes sure the external check of the checkout bench can run wrk:
#
#   source scripts/lib/wrk.sh; ensure_wrk
#
# Uses wrk on PATH, else installs Debian's wrk package with apt-get (needs
# root or sudo).

ensure_wrk() {
    if command -v wrk >/dev/null 2>&1; then
        return 0
    fi
    printf '[wrk] no wrk installed; installing it with apt-get\n' >&2
    local run_as_root=()
    if [ "$(id -u)" -ne 0 ]; then run_as_root=(sudo); fi
    "${run_as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${run_as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
}
