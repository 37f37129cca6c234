# shellcheck shell=bash
# Settings shared by the local test cluster's scripts (sourced by up.sh,
# down.sh, images.sh, report.sh, ci.sh). Every name and address here is the
# cluster's own; see docs/deploy.md#the-local-test-cluster.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# All state (certificates, etcd, containerd, kubelet, logs, the Postgres for
# the pods) lives here; down.sh removes it unless K8S_KEEP=1.
K8S_DIR=${K8S_DIR:-/tmp/serbero-k8s}
K8S_BIN=${K8S_BIN:-$root/bin/k8s}
NODE_NAME=serbero-k8s
BRIDGE=srbk8s0
# Pods get addresses from POD_SUBNET (the node's share of POD_CIDR) on the
# bridge; GATEWAY is the host's address on it, where CoreDNS, the Postgres
# for the pods and the tests' relays listen.
POD_CIDR=10.244.0.0/16
POD_SUBNET=10.244.0.0/24
GATEWAY=10.244.0.1
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SVC_IP=10.96.0.1
CLUSTER_DOMAIN=cluster.local
# Ports on the host, away from the services this machine already runs.
ETCD_PORT=23790
ETCD_PEER_PORT=23800
APISERVER_PORT=16443
PG_PORT=25432
COREDNS_READY_PORT=18181
# iptables chain of our own (forwarding rules for the bridge).
FWD_CHAIN=SRBK8S-FORWARD
# Images loaded into containerd (nothing is pulled: no registry is reachable).
PAUSE_IMAGE=localhost/serbero-k8s/pause:1
SERBERO_IMAGE_REPO=localhost/serbero/serbero

export KUBECONFIG=$K8S_DIR/admin.kubeconfig
CTR=(ctr --address "$K8S_DIR/containerd/containerd.sock" --namespace k8s.io)
KUBECTL="$K8S_BIN/kubectl"

log() { printf '[k8s %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# node_ip: the machine's own address on its default-route interface (the
# kubelet's --node-ip: a loopback address is refused, and no dummy link can be
# created on this kernel).
node_ip() {
  local dev
  dev=$(ip -4 route show default | awk '{print $5; exit}')
  [ -n "$dev" ] || dev=eth0
  ip -4 -o addr show dev "$dev" | awk '{print $4}' | cut -d/ -f1 | head -1
}

# start NAME CMD...: run a process in the background with its log in
# $K8S_DIR/logs/NAME.log and its pid in $K8S_DIR/pids/NAME.pid (down.sh stops
# exactly those pids).
start() {
  local name=$1; shift
  mkdir -p "$K8S_DIR/logs" "$K8S_DIR/pids"
  "$@" >>"$K8S_DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$K8S_DIR/pids/$name.pid"
}

# wait_for WHAT SECONDS CMD...: poll CMD once a second until it succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  local i
  for ((i = 0; i < secs; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  log "timed out after ${secs}s waiting for $what"
  return 1
}
