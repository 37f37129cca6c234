#!/usr/bin/env bash
# Finds or starts the Postgres that `make dev` and `make test` use, and
# prints an admin URL for it (database "postgres"). One place decides, so
# both commands always agree:
#
#   1. $PG_URL, if set, verbatim (make test passes $TEST_DATABASE_URL, make
#      dev $SERBERO_DATABASE_URL): nothing is probed or started, so a wrong
#      URL fails loudly in the tests instead of being papered over;
#   2. else the server on 127.0.0.1:$PG_SHARED_PORT (default 5432) if one
#      answers;
#   3. else a private cluster under $PG_DATA (default .data/pg) on
#      127.0.0.1:$PG_PRIVATE_PORT (default 54329), created with initdb and
#      started with pg_ctl as the postgres user when we are root (initdb
#      refuses root); the Postgres binaries are installed with apt if the
#      machine has none.
#
#   scripts/postgres.sh url    print the admin URL (starting a cluster if needed)
#   scripts/postgres.sh stop   stop the private cluster, if it runs
#
# Progress goes to stderr; stdout is only the URL.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shared_port=${PG_SHARED_PORT:-5432}
private_port=${PG_PRIVATE_PORT:-54329}
pgdata=${PG_DATA:-$root/.data/pg}
case $pgdata in /*) ;; *) pgdata=$root/$pgdata ;; esac

log() { printf '\033[1mpostgres:\033[0m %s\n' "$*" >&2; }

pg_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  return 1
}

ensure_binaries() {
  pg_bin >/dev/null && return
  log "installing PostgreSQL (apt-get install postgresql)"
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq postgresql >/dev/null
  pg_bin >/dev/null || { log "no initdb after installing postgresql"; exit 1; }
}

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# answers reports whether a Postgres accepts connections on 127.0.0.1:$1.
answers() {
  local bin
  if bin=$(pg_bin 2>/dev/null) && [ -x "$bin/pg_isready" ]; then
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$1"
  elif command -v pg_isready >/dev/null; then
    pg_isready -q -h 127.0.0.1 -p "$1"
  else
    # No client tools yet: a bare TCP probe (then the binaries get installed).
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

start_private() {
  ensure_binaries
  local bin
  bin=$(pg_bin)
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    log "creating a private Postgres cluster in $pgdata"
    mkdir -p "$pgdata"
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$pgdata"
    as_pg "$bin/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 --no-sync >/dev/null
  fi
  if ! as_pg "$bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
    log "starting the private Postgres on 127.0.0.1:$private_port (stop it with: make dev/stop-db)"
    as_pg "$bin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $private_port -k $pgdata -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null || { log "pg_ctl start failed; see $pgdata/server.log"; tail -20 "$pgdata/server.log" >&2 || true; exit 1; }
  fi
}

url() {
  if [ -n "${PG_URL:-}" ]; then
    echo "$PG_URL"
    return
  fi
  if answers "$shared_port"; then
    echo "postgres://postgres@127.0.0.1:$shared_port/postgres?sslmode=disable"
    return
  fi
  start_private
  echo "postgres://postgres@127.0.0.1:$private_port/postgres?sslmode=disable"
}

stop() {
  local bin
  if [ -f "$pgdata/postmaster.pid" ] && bin=$(pg_bin); then
    as_pg "$bin/pg_ctl" -D "$pgdata" -m fast stop >&2
  else
    log "no private Postgres running in $pgdata"
  fi
}

case "${1:-url}" in
  url) url ;;
  stop) stop ;;
  *) echo "usage: scripts/postgres.sh url|stop" >&2; exit 2 ;;
esac
