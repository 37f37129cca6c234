#!/usr/bin/env bash
# Runs Serbero for development: every service in one process (--target=all),
# still talking gRPC between components, with:
#   - Postgres: $SERBERO_DATABASE_URL if set; else database serbero_dev on
#     the server scripts/postgres.sh finds or starts (127.0.0.1:5432 if one
#     answers, else a private cluster under .data/pg; make test uses the
#     same one);
#   - a config: ./config.toml if present, else .data/dev-config.toml,
#     generated once with fresh keys;
#   - an embedded relay (relaygw starts one in --dev mode when no [[relays]]
#     are configured);
#   - when the config has no [reasoning] section: the scripted reasoning
#     simulator (serbero devtool reasoning-sim, not a model) on
#     127.0.0.1:8089, with [mediation] and [reasoning] pointed at it
#     (openai-compatible, a dummy key). SERBERO_DEV_REASONING_SCRIPT names
#     a script file for it;
#   - the dev Mostro node (serbero devtool mostro, a stand-in for mostrod)
#     when .data/dev-mostro.key exists: it publishes its info event on the
#     dev relay, opens disputes for "devtool open-dispute" and answers
#     Serbero's admin-take-dispute; "devtool party" plays buyer and seller.
#     SERBERO_DEV_MOSTRO=0 leaves it out.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
data=$root/.data
mkdir -p "$data"

log() { printf '\033[1mdev:\033[0m %s\n' "$*" >&2; }

# database_url: $SERBERO_DATABASE_URL verbatim, else a serbero_dev database
# on the Postgres scripts/postgres.sh finds or starts (the same one make
# test uses).
database_url() {
  if [ -n "${SERBERO_DATABASE_URL:-}" ]; then echo "$SERBERO_DATABASE_URL"; return; fi
  local admin psql
  admin=$(PG_URL= scripts/postgres.sh url)
  psql=$(ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -1)
  [ -n "$psql" ] || psql=psql
  "$psql" -q "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname='serbero_dev'" | grep -q 1 \
    || "$psql" -q "$admin" -c "CREATE DATABASE serbero_dev" >/dev/null
  echo "${admin/\/postgres\?//serbero_dev?}"
}

hexkey() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }

config_path() {
  if [ -n "${SERBERO_CONFIG:-}" ]; then echo "$SERBERO_CONFIG"; return; fi
  if [ -f config.toml ]; then echo "$root/config.toml"; return; fi
  local cfg=$data/dev-config.toml
  if [ ! -f "$cfg" ]; then
    log "writing $cfg (fresh Serbero key; edit [mostro].pubkey and [[solvers]] to taste)"
    "$root/bin/serbero" devtool init-config --out "$cfg" >/dev/null
  fi
  echo "$cfg"
}

export SERBERO_DATABASE_URL
SERBERO_DATABASE_URL=$(database_url)
cfg=$(config_path)
# A stable service token, so the operator CLI can talk to this process.
token=$data/dev-token
[ -s "$token" ] || { (umask 077; hexkey > "$token"); }
export SERBERO_AUTH_TOKEN_FILE=$token
log "database: ${SERBERO_DATABASE_URL}"
log "config:   $cfg"
log "operator CLI: SERBERO_AUTH_TOKEN_FILE=.data/dev-token bin/serbero ctl disputes list"
"$root/bin/serbero" migrate up --config "$cfg"

# Background helpers, stopped when this script ends.
bg_pids=""
trap 'for p in $bg_pids; do kill "$p" 2>/dev/null || true; done' EXIT

if grep -q '^[[:space:]]*\[reasoning\]' "$cfg"; then
  have_sim=
else
  have_sim=1
  sim_addr=${SERBERO_DEV_REASONING_SIM:-127.0.0.1:8089}
  sim_args=(devtool reasoning-sim --listen "$sim_addr")
  [ -n "${SERBERO_DEV_REASONING_SCRIPT:-}" ] && sim_args+=(--script "$SERBERO_DEV_REASONING_SCRIPT")
  "$root/bin/serbero" "${sim_args[@]}" >"$data/reasoning-sim.log" 2>&1 &
  bg_pids="$bg_pids $!"
  for _ in $(seq 50); do # wait until it listens, so the start-up health check finds it
    (exec 3<>"/dev/tcp/${sim_addr%:*}/${sim_addr##*:}") 2>/dev/null && break
    sleep 0.1
  done
  log "reasoning: the scripted simulator on http://$sim_addr/v1 (log: .data/reasoning-sim.log); add a [reasoning] section to use a real provider"
  export SERBERO_MEDIATION_ENABLED=true SERBERO_REASONING_ENABLED=true SERBERO_REASONING_PROVIDER=openai-compatible \
    SERBERO_REASONING_API_BASE="http://$sim_addr/v1" SERBERO_REASONING_MODEL=reasoning-sim SERBERO_REASONING_API_KEY=dev-dummy-key
fi

# The dev Mostro waits for the relay serve --dev is about to start. It
# refuses to run (see its log) when the key is not the config's
# [mostro].pubkey, e.g. with a ./config.toml naming a real node.
if [ -f "$data/dev-mostro.key" ] && [ "${SERBERO_DEV_MOSTRO:-1}" != 0 ]; then
  relay_url="ws://${SERBERO_RELAYGW_DEV_RELAY_LISTEN:-127.0.0.1:7447}"
  "$root/bin/serbero" devtool mostro --config "$cfg" --mostro-key "$data/dev-mostro.key" --relay "$relay_url" --wait 2m \
    >"$data/dev-mostro.log" 2>&1 &
  bg_pids="$bg_pids $!"
  log "mostro: the dev Mostro node on $relay_url, control on 127.0.0.1:8090 (log: .data/dev-mostro.log)"
  log "try a mediation, in another terminal (README.md#try-a-mediation):"
  log "  bin/serbero devtool read-dms --follow                 # the dev solver's DMs"
  log "  bin/serbero devtool open-dispute                      # ends in a summary [--outcome escalate: a handoff]"
  log "  bin/serbero devtool party --role buyer --listen       # Serbero's questions to the buyer"
  log "  bin/serbero devtool party --role buyer --say \"I sent the SEPA transfer at 10:02\""
  log "  bin/serbero devtool party --role seller --say \"It arrived at 10:30\""
  [ -n "$have_sim" ] || log "  (--outcome needs the simulator; with a [reasoning] provider the model decides)"
fi

"$root/bin/serbero" serve --target=all --dev --config "$cfg"
