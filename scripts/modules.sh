#!/usr/bin/env bash
# Keeps the workspace's Go modules honest (see docs/modules.md):
#
#   scripts/modules.sh check   fail if two modules resolve different versions
#                              of the same dependency, or a service module
#                              requires another service module outside the
#                              allowed test-kit exceptions (make verify)
#   scripts/modules.sh align   raise every module to the highest version any
#                              module resolves, then tidy (the fix for check)
#
# Compared are the modules that provide a package a module builds, tests
# included (GOWORK=off go list -deps -test ./...), at the version that
# module resolves on its own: that is the code its tests run and what `make
# modules` and Docker build. Entries of the module graph that no package
# comes from are not compared: aligning them would only add requirements
# nothing uses. In-repo modules (github.com/serbero/serbero/...) are
# replaced by local paths and not compared.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local GOWORK=off
repo=github.com/serbero/serbero

# Service modules may require another service module only for a test kit
# used from _test.go files (depguard enforces the test-only part). Each
# allowed pair is "requirer required"; anything else fails the check.
allowed_service_requires=(
  "services/authsvc services/relaygw"      # relaygwtest in tests
  "services/escalationsvc services/relaygw" # relaygwtest in tests
  "services/intakesvc services/relaygw"    # relaygwtest in tests
)

# modules lists the workspace's module directories, relative to the root.
modules() {
  GOWORK= go list -m -f '{{.Dir}}' | sed "s|^$PWD/\{0,1\}||; s|^$|.|"
}

# built prints "path version" for every external module that provides a
# package the module in the current directory builds, tests included.
built() {
  go list -deps -test -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}}{{end}}{{end}}' ./... |
    awk -v repo="$repo" 'NF == 2 && index($1, repo) != 1' | sort -u
}

# resolved prints "path version module" for every external dependency each
# module builds.
resolved() {
  local m
  for m in $(modules); do
    (cd "$m" && built) | awk -v m="$m" '{ print $1, $2, m }'
  done
}

# drift prints "path module=version ..." for every dependency resolved at
# more than one version.
drift() {
  resolved | sort -k1,1 -k3,3 | awk '
    { vers[$1] = vers[$1] " " $3 "=" $2; if (!(($1, $2) in seen)) { seen[$1, $2] = 1; n[$1]++ } }
    END { for (k in n) if (n[k] > 1) print k vers[k] }' | sort
}

check_alignment() {
  local out
  out=$(drift)
  if [ -n "$out" ]; then
    echo "modules resolve different versions of the same dependency (run scripts/modules.sh align):"
    echo "$out" | sed 's/^/  /'
    return 1
  fi
}

check_service_requires() {
  local m req bad=0 pair ok
  for m in $(modules); do
    case $m in services/*) ;; *) continue ;; esac
    for req in $(cd "$m" && go mod edit -json | awk -F'"' '/"Path": "github.com\/serbero\/serbero\/services\// { print $4 }'); do
      req=${req#"$repo"/}
      [ "$req" = "$m" ] && continue
      ok=0
      for pair in "${allowed_service_requires[@]}"; do
        [ "$pair" = "$m $req" ] && ok=1
      done
      if [ $ok = 0 ]; then
        echo "$m/go.mod requires $req: a service depends on gen/go and pkg only (test kits belong in pkg/testkit)"
        bad=1
      fi
    done
  done
  return $bad
}

# highest prints "path version" with the highest version any module resolves.
highest() {
  resolved | awk '{ print $1, $2 }' | sort -u | sort -k1,1 -k2,2V |
    awk '{ last[$1] = $2 } END { for (k in last) print k, last[k] }'
}

align() {
  local round m path ver args
  for round in 1 2 3 4 5; do
    [ -z "$(drift)" ] && { echo "modules aligned"; return 0; }
    declare -A want=()
    while read -r path ver; do want[$path]=$ver; done < <(highest)
    for m in $(modules); do
      args=()
      while read -r path ver; do
        [ "${want[$path]:-}" != "" ] && [ "${want[$path]}" != "$ver" ] && args+=("$path@${want[$path]}")
      done < <(cd "$m" && built)
      if [ ${#args[@]} -gt 0 ]; then
        echo "align $m: ${#args[@]} dependencies (round $round)"
        (cd "$m" && GOFLAGS=-mod=mod go get "${args[@]}" >/dev/null)
      fi
    done
    for m in $(modules); do (cd "$m" && go mod tidy); done
    unset want
  done
  check_alignment
}

case "${1:-check}" in
  check)
    status=0
    check_alignment || status=1
    check_service_requires || status=1
    [ $status = 0 ] && echo "modules: every shared dependency at one version; service requires within the allowed list"
    exit $status
    ;;
  align) align ;;
  *) echo "usage: scripts/modules.sh check|align" >&2; exit 2 ;;
esac
