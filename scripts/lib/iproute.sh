# shellcheck shell=bash
# Makes sure the relay's cut-off test can make a network namespace with
# `ip` (it runs it as root, or under passwordless sudo):
#
#   source scripts/lib/iproute.sh; ensure_ip
#
# Uses ip on PATH, else installs Debian's iproute2 package with apt-get
# (needs root or sudo).

ensure_ip() {
    if command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ]; then
        return 0
    fi
    printf '[iproute2] no ip command; installing iproute2 with apt-get\n' >&2
    local run_as_root=()
    if [ "$(id -u)" -ne 0 ]; then run_as_root=(sudo); fi
    "${run_as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${run_as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
}
