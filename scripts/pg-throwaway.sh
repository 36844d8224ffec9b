#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on loopback and prints its DATABASE_URL.
# Usage: eval "$(scripts/pg-throwaway.sh start DIR [PORT])"; scripts/pg-throwaway.sh stop DIR
# Runs the server as the 'postgres' user when started as root (PostgreSQL refuses root).
set -euo pipefail
cmd="${1:?start|stop}"
dir="${2:?data directory}"
port="${3:-54329}"
bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[ -x "$bindir/initdb" ] || { echo "error: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$cmd" in
start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
        as_pg "$bindir/initdb" -D "$dir" -U postgres --auth=trust --no-sync -E UTF8 >/dev/null
    fi
    as_pg "$bindir/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c random_page_cost=1.1" \
        start >/dev/null
    echo "export DATABASE_URL=postgres://postgres@127.0.0.1:$port/mindsettler"
    ;;
stop)
    as_pg "$bindir/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true
    ;;
*) echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2;;
esac
