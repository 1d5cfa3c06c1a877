# shellcheck shell=bash
# Finds or provides the PostgreSQL that the run and test commands use.
#
#   source scripts/lib/postgres.sh; ensure_postgres
#
# Afterwards DATABASE_URL points at a server that answers:
#   1. DATABASE_URL, if it is set, is used as it is;
#   2. else a server listening on 127.0.0.1:5432;
#   3. else a local cluster is started, after installing PostgreSQL with
#      apt-get if there is none (needs root or sudo).
# In cases 2 and 3 the URL is postgres://postgres:postgres@127.0.0.1:5432/postgres;
# the password only matters where the server asks for one (a cluster this
# script installed or started gets it set).

PG_DEFAULT_URL="postgres://postgres:postgres@127.0.0.1:5432/postgres"

pg_log() { printf '[postgres] %s\n' "$*" >&2; }

pg_port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/5432") 2>/dev/null
}

pg_as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

pg_as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        sudo -u postgres "$@"
    fi
}

pg_install() {
    pg_log "no PostgreSQL installed; installing it with apt-get (this takes a minute)"
    pg_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    pg_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}

pg_start_local_cluster() {
    if ! ls /etc/postgresql/*/main/postgresql.conf >/dev/null 2>&1; then
        pg_install
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_log "starting the local PostgreSQL $version cluster"
    pg_as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null ||
        pg_as_root service postgresql start >/dev/null 2>&1 || true
    local waited=0
    until pg_port_open; do
        if [ "$waited" -ge 60 ]; then
            pg_log "PostgreSQL did not start listening on 127.0.0.1:5432 within 30 s"
            pg_log "check: pg_lsclusters; tail /var/log/postgresql/*.log"
            return 1
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
    # Debian's clusters ask for a password over TCP; give the superuser the
    # one our default URL carries, unless it already logs in.
    if ! psql "$PG_DEFAULT_URL" -Atqc 'select 1' >/dev/null 2>&1; then
        pg_log "setting the password of role postgres for TCP logins"
        pg_as_postgres psql -qc "ALTER ROLE postgres PASSWORD 'postgres'" >/dev/null
    fi
}

ensure_postgres() {
    if [ -n "${DATABASE_URL:-}" ]; then
        pg_log "using DATABASE_URL from the environment"
        export DATABASE_URL
        return 0
    fi
    if ! pg_port_open; then
        pg_start_local_cluster || return 1
    fi
    export DATABASE_URL="$PG_DEFAULT_URL"
    pg_log "using $DATABASE_URL"
}
