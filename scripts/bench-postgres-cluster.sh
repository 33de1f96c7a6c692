#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the store benchmark (shared/bench/WORKLOAD.md): initdb in a
# fresh temporary directory, listening on 127.0.0.1 on a free port, default settings except
# shared_buffers=256MB; fsync and synchronous_commit are on (the defaults, set explicitly so
# the benchmark's SHOW output cannot surprise anyone).
#
#   scripts/bench-postgres-cluster.sh            start one; prints its admin URL on stdout and
#                                                its directory on stderr
#   scripts/bench-postgres-cluster.sh stop DIR   stop it and remove DIR
#
# Run as root, the server runs as the `postgres` user (runuser); otherwise as the caller.
# PG_BIN overrides the directory of initdb and pg_ctl (default: `pg_config --bindir`).
set -euo pipefail

PG_BIN=${PG_BIN:-$(pg_config --bindir)}

as_server_user() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

if [ "${1:-}" = stop ]; then
    dir=${2:?usage: $0 stop DIR}
    [ -f "$dir/data/PG_VERSION" ] || { echo "$dir is not a cluster made by this script" >&2; exit 1; }
    as_server_user "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >&2
    rm -rf -- "$dir"
    exit 0
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/anquan-bench-pg.XXXXXX")
if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

as_server_user "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C >"$dir/initdb.log"
as_server_user "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o \
    "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir \
     -c shared_buffers=256MB -c fsync=on -c synchronous_commit=on" start >&2

echo "cluster in $dir (stop: $0 stop $dir)" >&2
echo "postgres://postgres@127.0.0.1:$port/postgres"
