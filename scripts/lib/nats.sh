# shellcheck shell=bash
# Makes sure the relay's tests can start private NATS servers:
#
#   source scripts/lib/nats.sh; ensure_nats_server
#
# Uses NATS_SERVER if set, else nats-server on PATH or in /usr/sbin, else
# installs Debian's nats-server package with apt-get (needs root or sudo).
# Only the binary is needed: each test starts its own server (own port, own
# store directory), never the machine's.

ensure_nats_server() {
    if [ -n "${NATS_SERVER:-}" ] && [ -x "$NATS_SERVER" ]; then
        return 0
    fi
    if command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ]; then
        return 0
    fi
    printf '[nats] no nats-server installed; installing it with apt-get\n' >&2
    local run_as_root=()
    if [ "$(id -u)" -ne 0 ]; then run_as_root=(sudo); fi
    "${run_as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${run_as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
}
