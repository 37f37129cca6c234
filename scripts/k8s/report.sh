#!/usr/bin/env bash
# Collect what explains a failure on the test cluster into a directory:
# nodes, every object, events, `kubectl describe` of the pods, every
# container's logs (and the previous container's), and the logs of the
# kubelet, containerd, the control plane, CoreDNS and the pods' Postgres.
# Prints the directory and the most telling parts (the namespace's events,
# pods that are not Ready, the tails of the kubelet's and containerd's logs).
# Usage: scripts/k8s/report.sh DIR [NAMESPACE]
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

out=${1:?usage: report.sh DIR [NAMESPACE]}
ns=${2:-}
mkdir -p "$out/logs" "$out/pods"
k() { timeout 60 "$KUBECTL" "$@" 2>&1; }

if k get --raw /readyz >/dev/null; then
  k get nodes -o wide > "$out/nodes.txt"
  k describe nodes > "$out/nodes-describe.txt"
  k get all,configmaps,secrets,serviceaccounts,networkpolicies,poddisruptionbudgets,jobs,endpointslices -A -o wide > "$out/objects.txt"
  k get events -A --sort-by=.lastTimestamp > "$out/events.txt"
  for n in ${ns:-} kube-system default; do
    k -n "$n" describe pods > "$out/pods/$n-describe.txt"
    for p in $(k -n "$n" get pods -o name 2>/dev/null); do
      for c in $(k -n "$n" get "$p" -o jsonpath='{.spec.initContainers[*].name} {.spec.containers[*].name}'); do
        base="$out/pods/$n-${p#pod/}-$c"
        k -n "$n" logs "$p" -c "$c" > "$base.log"
        k -n "$n" logs "$p" -c "$c" --previous > "$base.previous.log" || rm -f "$base.previous.log"
      done
    done
  done
else
  echo "the API server does not answer" > "$out/objects.txt"
fi
# Logs the cluster wrote on the host (and the container logs the kubelet keeps).
cp "$K8S_DIR"/logs/*.log "$out/logs/" 2>/dev/null
cp "$K8S_DIR/pg/postgres.log" "$out/logs/postgres.log" 2>/dev/null
[ -d "$K8S_DIR/pod-logs" ] && cp -r "$K8S_DIR/pod-logs" "$out/pod-logs" 2>/dev/null

echo "==== failure report: $out"
if [ -n "$ns" ] && [ -f "$out/events.txt" ]; then
  echo "---- events in $ns"
  grep -E "^(NAMESPACE|$ns )" "$out/events.txt" | tail -60
  echo "---- pods in $ns that are not Ready"
  k -n "$ns" get pods -o wide
  for p in $(k -n "$ns" get pods -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | awk '$2 != "True" {print $1}'); do
    k -n "$ns" describe pod "$p" | sed -n '/^Events:/,$p'
    for f in "$out/pods/$ns-$p"-*.log; do [ -f "$f" ] && { echo "-- $(basename "$f")"; tail -40 "$f"; }; done
  done
fi
for l in kubelet containerd kube-apiserver; do
  echo "---- tail of $l's log"
  tail -40 "$out/logs/$l.log" 2>/dev/null
done
