#!/usr/bin/env bash
# Tear down everything scripts/k8s/up.sh created (make k8s-down): the
# processes it started (by their recorded pids), the containers and shims of
# its containerd, every mount under $K8S_DIR, the network namespaces its CNI
# plugins were given, the bridge, the iptables chains (ours, kube-proxy's and
# the kubelet's KUBE-*), the kernel settings it changed, the Postgres for the
# pods, and $K8S_DIR itself (kept with K8S_KEEP=1, e.g. to read the logs).
# Idempotent: safe to run when nothing, or only part, is up.
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root"

# stop_pid NAME: SIGTERM the recorded process, SIGKILL after 10 s.
stop_pid() {
  local f=$K8S_DIR/pids/$1.pid pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$f"
}

if [ -d "$K8S_DIR" ]; then
  log "stopping the cluster in $K8S_DIR"
  # The kubelet first (it would restart containers), then the control plane.
  for p in kubelet kube-proxy coredns kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_pid "$p"; done

  # Containers: kill and delete every one in our runc root, then the shims
  # (they outlive containerd by design), then containerd.
  runc_root=$K8S_DIR/runc/k8s.io
  if [ -d "$runc_root" ]; then
    for id in $(runc --root "$runc_root" list -q 2>/dev/null); do
      runc --root "$runc_root" kill -a "$id" KILL 2>/dev/null
      runc --root "$runc_root" delete -f "$id" 2>/dev/null
    done
  fi
  for f in "$K8S_DIR"/containerd/state/io.containerd.runtime.v2.task/*/*/shim.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  done
  stop_pid containerd

  # The Postgres for the pods.
  if [ -f "$K8S_DIR/pg/data/postmaster.pid" ]; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$K8S_DIR/pg/data" -m immediate -w -t 30 stop >/dev/null 2>&1
  fi

  # Network namespaces our CNI plugins were given (recorded by their wrappers).
  if [ -f "$K8S_DIR/cni/netns.log" ]; then
    for ns in $(awk '{print $3}' "$K8S_DIR/cni/netns.log" | sort -u); do
      case "$ns" in
        /var/run/netns/cni-*|/run/netns/cni-*) ;;
        *) continue ;;
      esac
      name=$(basename "$ns")
      [ -e "/run/netns/$name" ] && ip netns delete "$name" 2>/dev/null
    done
  fi

  # Every mount under $K8S_DIR, deepest first (container rootfs, pod volumes,
  # sandbox shm, the etcd tmpfs).
  for i in 1 2 3; do
    mounts=$(awk -v d="$K8S_DIR" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r)
    [ -z "$mounts" ] && break
    for m in $mounts; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
  done
fi

# The cgroups runc made for the pods (under k8s.io, containerd's CRI
# namespace, in every hierarchy); rmdir leaves any cgroup still in use.
for d in /sys/fs/cgroup/*/k8s.io; do
  [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
done

# The kubelet's symlinks to our pod logs.
for l in /var/log/containers/*.log; do
  [ -L "$l" ] && case "$(readlink "$l")" in "$K8S_DIR"/*) rm -f "$l" ;; esac
done

# The bridge and whatever veth ends are still attached to it.
if ip link show "$BRIDGE" >/dev/null 2>&1; then
  for v in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link delete "$v" 2>/dev/null
  done
  ip link delete "$BRIDGE" 2>/dev/null
fi

# iptables: our chain, then kube-proxy's and the kubelet's (KUBE-*; nothing
# else on this machine uses that prefix).
for ipt in iptables ip6tables; do
  command -v "$ipt" >/dev/null || continue
  while "$ipt" -D FORWARD -j "$FWD_CHAIN" 2>/dev/null; do :; done
  "$ipt" -F "$FWD_CHAIN" 2>/dev/null && "$ipt" -X "$FWD_CHAIN" 2>/dev/null
  for table in filter nat mangle; do
    rules=$("$ipt" -t "$table" -S 2>/dev/null) || continue
    # Jumps from the built-in chains into KUBE-* chains.
    echo "$rules" | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j KUBE-' | while read -r rule; do
      eval "$ipt -t $table ${rule/-A /-D }" 2>/dev/null
    done
    chains=$(echo "$rules" | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}')
    for c in $chains; do "$ipt" -t "$table" -F "$c" 2>/dev/null; done
    for c in $chains; do "$ipt" -t "$table" -X "$c" 2>/dev/null; done
  done
done

# Kernel settings, as they were before up.sh.
if [ -f "$K8S_DIR/sysctl.saved" ]; then
  while IFS='=' read -r k v; do sysctl -qw "$k=$v" 2>/dev/null; done < "$K8S_DIR/sysctl.saved"
  rm -f "$K8S_DIR/sysctl.saved"
fi

if [ -d "$K8S_DIR" ]; then
  if [ "${K8S_KEEP:-0}" = 1 ]; then
    log "kept $K8S_DIR (logs in $K8S_DIR/logs)"
  elif awk -v d="$K8S_DIR" 'index($5, d) == 1 {found=1} END {exit !found}' /proc/self/mountinfo; then
    log "WARNING: mounts remain under $K8S_DIR; not removing it"
  else
    rm -rf "$K8S_DIR"
  fi
fi
log "down"
