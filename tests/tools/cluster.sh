#!/usr/bin/env bash
# A local PostgreSQL cluster for the demo and the tests, one per name and major, kept where
# tests/tools/common.sh says (outside the checkout as root, so that any checkout works).
#
#   cluster.sh start NAME [extra postgresql.conf lines...]   start (initdb first if needed)
#   cluster.sh stop NAME                                     stop, if running
#   cluster.sh env NAME                                      print PGHOST/PGPORT/PGUSER exports
#   cluster.sh dir NAME                                      print the cluster's directory
#
# The server is PG_CONFIG's (else that of major PG, default 15). As root the cluster belongs to
# the `postgres` user (initdb and pg_ctl refuse root); otherwise to the current user. It listens
# only on its own socket directory, on a free port. CLUSTER_INITDB_OPTIONS adds options to the
# initdb of a new cluster (pg_upgrade.sh: a new cluster's data checksums must match the old's).
set -euo pipefail

source "$(dirname "$0")/common.sh"
BINDIR="$("$PG_CONFIG" --bindir)"
cmd="$1"; name="$2"; shift 2
DIR="$CLUSTERS/$name"
DATA="$DIR/data"
SOCK="$DIR/socket"
OWNER="$(if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi)"

# Free: nothing listens on it over TCP or in /tmp, and no other cluster of this checkout claims it.
port_is_free() {
    local claimed
    claimed="$(for f in "$(dirname "$STATE")"/pg*/clusters/*/port; do [ "$f" = "$DIR/port" ] || cat "$f" 2>/dev/null; done)"
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && [ ! -e "/tmp/.s.PGSQL.$1" ] && ! grep -qx "$1" <<<"$claimed"
}

running() { [ -f "$DATA/postmaster.pid" ] && as_owner "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

case "$cmd" in
start)
    if running; then
        echo "==> cluster $name already running on port $(cat "$DIR/port")"
        exit 0
    fi
    mkdir -p "$DIR"
    if [ ! -f "$DATA/PG_VERSION" ]; then
        echo "==> initdb $DATA (owner $OWNER)"
        mkdir -p "$DATA" "$SOCK"
        chown "$OWNER" "$DIR" "$DATA" "$SOCK"
        as_owner "$BINDIR/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
            ${CLUSTER_INITDB_OPTIONS:-} >"$DIR/initdb.log"
        {
            echo "listen_addresses = ''"
            echo "unix_socket_directories = '$SOCK'"
            echo "wal_level = logical"
            echo "max_wal_senders = 10"
            echo "max_replication_slots = 10"
            echo "fsync = on"
            for line in "$@"; do echo "$line"; done
        } | as_owner tee -a "$DATA/postgresql.conf" >/dev/null
    fi
    if [ ! -f "$DIR/port" ] || ! port_is_free "$(cat "$DIR/port")"; then
        port=55432
        while ! port_is_free "$port"; do port=$((port + 1)); done
        echo "$port" >"$DIR/port"
    fi
    port="$(cat "$DIR/port")"
    echo "==> starting cluster $name on port $port (socket $SOCK)"
    # pgrx appends a Rust backtrace to the DETAIL of errors raised inside FFI calls when
    # RUST_BACKTRACE is set; the server runs without it, so error texts are the same everywhere.
    as_owner env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE \
        "$BINDIR/pg_ctl" -D "$DATA" -l "$DIR/server.log" -o "-p $port" -w -t 60 start >/dev/null
    ;;
stop)
    if running; then
        echo "==> stopping cluster $name"
        as_owner "$BINDIR/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    fi
    ;;
env)
    echo "export PGHOST='$SOCK' PGPORT='$(cat "$DIR/port")' PGUSER=postgres PATH='$BINDIR':\"\$PATH\""
    ;;
dir)
    echo "$DIR"
    ;;
*)
    echo "usage: $0 start|stop|env|dir NAME" >&2
    exit 2
    ;;
esac
