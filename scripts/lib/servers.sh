# Shared by scripts/test, scripts/demo and scripts/soak: install and start a throwaway PostgreSQL and Redis.
# Source it, then call: freshet_install_packages; freshet_start_servers DIR
# It exports DATABASE_URL, REDIS_URL, FRESHET_PG_DATA, FRESHET_PG_PORT, FRESHET_REDIS_PORT and defines
# freshet_stop_servers. No systemd: both servers run as plain processes under DIR.

FRESHET_APT_PACKAGES="postgresql-15 postgresql-client-15 redis-server redis-tools libpq-dev libssl-dev pkg-config openssl"
# Only the tests use these (a PgBouncer in transaction mode, curl for HTTP/2): scripts/test adds them.
FRESHET_TEST_PACKAGES="pgbouncer curl"
# hiredict (the maintained fork of hiredis, with TLS) is in Debian 12's bookworm-backports only.
FRESHET_BACKPORTS_PACKAGES="libhiredict-dev"
PG_BIN=/usr/lib/postgresql/15/bin

freshet_log() { printf '%s\n' "[freshet] $*" >&2; }

# Installs the Debian packages the build and the tests need, unless they are already there.
freshet_install_packages() {
    local missing="" backports=""
    for pkg in $FRESHET_APT_PACKAGES ${FRESHET_EXTRA_PACKAGES:-}; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
    done
    for pkg in $FRESHET_BACKPORTS_PACKAGES; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || backports="$backports $pkg"
    done
    [ -z "$missing" ] && [ -z "$backports" ] && return 0
    freshet_log "installing:$missing$backports"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    if [ -n "$backports" ] && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "deb http://deb.debian.org/debian bookworm-backports main" | $sudo tee /etc/apt/sources.list.d/freshet-backports.list >/dev/null
    fi
    # Keep package scripts from starting services or creating a default cluster.
    $sudo sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
    $sudo mkdir -p /etc/postgresql-common/createcluster.d
    echo 'create_main_cluster = false' | $sudo tee /etc/postgresql-common/createcluster.d/freshet.conf >/dev/null
    $sudo apt-get update -qq
    [ -z "$missing" ] || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
    [ -z "$backports" ] || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends -t bookworm-backports $backports >/dev/null
    $sudo rm -f /usr/sbin/policy-rc.d
}

# Prints a TCP port nobody listens on.
freshet_free_port() {
    python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

freshet_start_servers() {
    local dir="$1"
    mkdir -p "$dir"
    chmod 755 "$dir"
    FRESHET_SERVERS_DIR="$dir"
    FRESHET_PG_DATA="$dir/pgdata"
    FRESHET_PG_PORT="$(freshet_free_port)"
    FRESHET_REDIS_PORT="$(freshet_free_port)"
    local run_as=""
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres:postgres "$dir"
        run_as="runuser -u postgres --"
    fi
    freshet_log "starting PostgreSQL on 127.0.0.1:$FRESHET_PG_PORT and Redis on 127.0.0.1:$FRESHET_REDIS_PORT (data in $dir)"
    (cd / && $run_as "$PG_BIN/initdb" -D "$FRESHET_PG_DATA" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1) \
        || { cat "$dir/initdb.log" >&2; return 1; }
    (cd / && $run_as "$PG_BIN/pg_ctl" -D "$FRESHET_PG_DATA" -w -l "$dir/postgres.log" \
        -o "-c listen_addresses=127.0.0.1 -p $FRESHET_PG_PORT -k $dir -c fsync=off -c max_connections=200 -c wal_level=logical -c max_replication_slots=50 -c max_wal_senders=50" start >/dev/null) \
        || { cat "$dir/postgres.log" >&2; return 1; }
    redis-server --port "$FRESHET_REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
        --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
    local i
    for i in $(seq 1 50); do
        [ "$(redis-cli -p "$FRESHET_REDIS_PORT" ping 2>/dev/null)" = "PONG" ] && [ -s "$dir/redis.pid" ] && break
        sleep 0.1
    done
    [ "$(redis-cli -p "$FRESHET_REDIS_PORT" ping 2>/dev/null)" = "PONG" ] || { freshet_log "Redis did not start"; cat "$dir/redis.log" >&2; return 1; }
    export DATABASE_URL="postgresql://postgres@127.0.0.1:$FRESHET_PG_PORT/postgres"
    export REDIS_URL="redis://127.0.0.1:$FRESHET_REDIS_PORT/0"
    export FRESHET_PG_DATA FRESHET_PG_PORT FRESHET_REDIS_PORT FRESHET_SERVERS_DIR
    export FRESHET_PG_CTL="$PG_BIN/pg_ctl"
}

freshet_stop_servers() {
    [ -n "${FRESHET_SERVERS_DIR:-}" ] || return 0
    if [ -f "$FRESHET_SERVERS_DIR/redis.pid" ]; then
        kill -CONT "$(cat "$FRESHET_SERVERS_DIR/redis.pid")" 2>/dev/null || true
        kill "$(cat "$FRESHET_SERVERS_DIR/redis.pid")" 2>/dev/null || true
    fi
    local run_as=""
    [ "$(id -u)" -eq 0 ] && run_as="runuser -u postgres --"
    (cd / && $run_as "$PG_BIN/pg_ctl" -D "$FRESHET_PG_DATA" -m immediate stop >/dev/null 2>&1) || true
    rm -rf "$FRESHET_SERVERS_DIR"
}
