#!/usr/bin/env bash
# What CI runs for the chart on a real cluster (make k8s-ci): build the pinned
# cluster binaries and helm, bring the cluster up, run the cluster tests
# (go test -tags cluster ./deploy/clustertest), and tear everything down, even
# when a step fails. On failure a report (events, pod logs, kubelet and
# containerd logs) is written to a directory printed at the end. Prints the
# duration of each phase.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

t0=$(date +%s)
phase() { log "$1 done in $(( $(date +%s) - $2 ))s"; }
report_dir=${K8S_REPORT_DIR:-/tmp/serbero-k8s-report-$(date +%s)}
cleanup() {
  rc=$?
  if [ $rc -ne 0 ]; then
    "$root/scripts/k8s/report.sh" "$report_dir" serbero-ci || true
    log "FAILED (exit $rc); report in $report_dir"
  fi
  s=$(date +%s)
  "$root/scripts/k8s/down.sh" || true
  phase "teardown" "$s"
  log "total $(( $(date +%s) - t0 ))s"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

s=$(date +%s)
make -s -C "$root" k8s-build "$root/bin/helm"
phase "build (cluster binaries, helm)" "$s"
s=$(date +%s)
"$root/scripts/k8s/up.sh"
phase "cluster up" "$s"
s=$(date +%s)
(cd "$root" && HELM="$root/bin/helm" K8S_DIR="$K8S_DIR" go test -tags cluster -count=1 -timeout 40m -v ./deploy/clustertest/)
phase "cluster tests" "$s"
