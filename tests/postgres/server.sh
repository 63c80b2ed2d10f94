#!/usr/bin/env bash
# A throw-away PostgreSQL server for the tests and benchmarks: its own cluster in a folder,
# listening on 127.0.0.1 only, on a free port, with a random password.
#
#   tests/postgres/server.sh start DIR [--durable]   prints the server's URL (also in DIR/url)
#   tests/postgres/server.sh stop DIR                 stops it and removes DIR
#   tests/postgres/server.sh restart DIR [SECONDS]    stops the server (fast: connections are cut),
#                                                     waits SECONDS (default 0), starts it again on
#                                                     the same port (a database restart, for tests)
#   tests/postgres/server.sh run CMD...               start, run CMD with CHAT_SHELL_TEST_POSTGRES_URL set, stop
#
# Without --durable the server skips fsync (a test cluster is thrown away anyway). Needs
# PostgreSQL's server programs (Debian: apt-get install postgresql). As root, the server runs as
# the `postgres` user (made by Debian's package) since PostgreSQL refuses to run as root.
set -euo pipefail

die() { echo "server.sh: $*" >&2; exit 1; }

pg_bin() {
    local found
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
        return
    fi
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [[ -n "$found" && -x "$found/initdb" ]] ||
        die "PostgreSQL's server programs are not installed (Debian: apt-get install postgresql)"
    echo "$found"
}

# run a command as the user owning the cluster
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        su -s /bin/sh postgres -c "$(printf '%q ' "$@")"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local dir=$1 durable=${2:-} bin port password user settings
    bin=$(pg_bin)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ $(id -u) -eq 0 ]]; then
        getent passwd postgres >/dev/null ||
            useradd --system --user-group --home-dir /nonexistent --shell /usr/sbin/nologin postgres
        chown postgres: "$dir"
        su -s /bin/sh postgres -c "test -w $(printf '%q' "$dir")" ||
            die "$dir is out of the postgres user's reach: give a folder it can enter (mktemp -d)"
    fi
    chmod 700 "$dir"
    user=chat_shell
    password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    (umask 077 && printf '%s\n' "$password" >"$dir/password")
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir/password"
    as_owner "$bin/initdb" --pgdata "$dir/data" --username "$user" --pwfile "$dir/password" \
        --auth-host scram-sha-256 --auth-local scram-sha-256 --encoding UTF8 --locale C.UTF-8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    settings="-c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c max_connections=300"
    [[ "$durable" == --durable ]] || settings+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    for _ in 1 2 3; do
        port=$(free_port)
        if as_owner "$bin/pg_ctl" --pgdata "$dir/data" --log "$dir/server.log" --wait \
            --timeout 60 -o "$settings -p $port" start >/dev/null 2>&1; then
            echo "postgresql://$user:$password@127.0.0.1:$port/postgres" >"$dir/url"
            echo "$settings -p $port" >"$dir/options"
            [[ $(id -u) -eq 0 ]] && chown postgres: "$dir/url"
            chmod 600 "$dir/url"
            cat "$dir/url"
            return
        fi
    done
    tail -n 20 "$dir/server.log" >&2 || true
    die "the server did not start"
}

stop() {
    local dir=$1 bin
    [[ -d "$dir/data" ]] || { rm -rf "$dir"; return; }
    bin=$(pg_bin)
    as_owner "$bin/pg_ctl" --pgdata "$dir/data" --mode fast --wait stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}

restart() {
    local dir=$1 pause=${2:-0} bin
    [[ -f "$dir/options" ]] || die "no server started in $dir"
    bin=$(pg_bin)
    as_owner "$bin/pg_ctl" --pgdata "$dir/data" --mode fast --wait stop >/dev/null 2>&1 ||
        die "the server in $dir did not stop"
    sleep "$pause"
    as_owner "$bin/pg_ctl" --pgdata "$dir/data" --log "$dir/server.log" --wait --timeout 60 \
        -o "$(cat "$dir/options")" start >/dev/null 2>&1 || {
        tail -n 20 "$dir/server.log" >&2 || true
        die "the server in $dir did not start again"
    }
}

case "${1:-}" in
    start) [[ $# -ge 2 ]] || die "usage: server.sh start DIR [--durable]"; start "$2" "${3:-}" ;;
    stop) [[ $# -eq 2 ]] || die "usage: server.sh stop DIR"; stop "$2" ;;
    restart) [[ $# -ge 2 ]] || die "usage: server.sh restart DIR [SECONDS]"; restart "$2" "${3:-0}" ;;
    run)
        shift
        [[ $# -ge 1 ]] || die "usage: server.sh run CMD..."
        dir=$(mktemp -d "${TMPDIR:-/tmp}/chat-shell-pg.XXXXXX")
        trap 'stop "$dir"' EXIT
        CHAT_SHELL_TEST_POSTGRES_URL=$(start "$dir")
        export CHAT_SHELL_TEST_POSTGRES_URL
        "$@"
        ;;
    *) die "usage: server.sh start DIR [--durable] | stop DIR | restart DIR [SECONDS] | run CMD..." ;;
esac
