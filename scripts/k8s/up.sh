#!/usr/bin/env bash
# Bring up the single-node test cluster (make k8s-up): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd + runc, the bridge CNI,
# the kubelet, kube-proxy (iptables), CoreDNS, a Postgres for the pods, and the
# serbero and pause images loaded into containerd. Everything lives under
# $K8S_DIR; scripts/k8s/down.sh undoes all of it (and is run first if a
# previous cluster was left behind). Needs root. The settings and why each is
# needed: docs/deploy.md#the-local-test-cluster.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (it creates a bridge, mounts and iptables rules)"
if [ -e "$K8S_DIR" ] || ip link show "$BRIDGE" >/dev/null 2>&1; then
  log "a previous cluster is still there: tearing it down first"
  "$root/scripts/k8s/down.sh"
fi

# ---- packages ---------------------------------------------------------------
need=()
for p in etcd-server containerd runc containernetworking-plugins iptables conntrack openssl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  # policy-rc.d keeps the packages' own services (a system etcd, containerd)
  # from starting: the cluster runs private instances.
  created_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ -z "$created_policy" ] || rm -f /usr/sbin/policy-rc.d
fi
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[ -x "$PG_BIN/initdb" ] || die "no PostgreSQL server binaries under /usr/lib/postgresql"

# ---- preflight: nothing of ours may collide with what the machine runs -------
NODE_IP=$(node_ip)
[ -n "$NODE_IP" ] || die "no IPv4 address on the default-route interface"
for port in $ETCD_PORT $ETCD_PEER_PORT $APISERVER_PORT $PG_PORT $COREDNS_READY_PORT 10248 10249 10250 10256 10257 10259; do
  if ss -Hltn "sport = :$port" | grep -q .; then die "port $port is already in use"; fi
done
if ip -4 route show | grep -qE "^(10\.244\.|10\.96\.)"; then
  die "a route into $POD_CIDR or $SERVICE_CIDR already exists: $(ip -4 route show | grep -E '^10\.(244|96)\.')"
fi
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl coredns pause; do
  [ -x "$K8S_BIN/$b" ] || die "$K8S_BIN/$b missing: run make k8s-build"
done

mkdir -p "$K8S_DIR"/{pki,logs,pids,etcd,containerd,runc,kubelet,pod-logs,cni/bin,cni/net.d,cni/ipam,images}
chmod 755 "$K8S_DIR"
echo "$NODE_IP" > "$K8S_DIR/node-ip"

# Kernel settings the kubelet and kube-proxy change or need: record them so
# down.sh restores the machine exactly.
sysctls=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables vm.overcommit_memory vm.panic_on_oom
  kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
: > "$K8S_DIR/sysctl.saved"
for s in "${sysctls[@]}"; do
  v=$(sysctl -n "$s" 2>/dev/null) && echo "$s=$v" >> "$K8S_DIR/sysctl.saved"
done
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.bridge.bridge-nf-call-iptables=1

# ---- network: the bridge and our forwarding chain -----------------------------
log "bridge $BRIDGE ($GATEWAY on $POD_SUBNET)"
ip link add "$BRIDGE" type bridge
ip addr add "$GATEWAY/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
# Pods talk to each other and to the host, never beyond it: forwarding out of
# the bridge to any other interface is dropped.
iptables -N "$FWD_CHAIN"
iptables -A "$FWD_CHAIN" -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
iptables -A "$FWD_CHAIN" -i "$BRIDGE" -j DROP
iptables -A "$FWD_CHAIN" -o "$BRIDGE" -j DROP
iptables -I FORWARD 1 -j "$FWD_CHAIN"

# ---- certificates and credentials -------------------------------------------
log "certificates"
pki=$K8S_DIR/pki
(
  cd "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=serbero-k8s-ca" 2>/dev/null
  sign() { # name subject extfile-lines...
    local name=$1 subj=$2; shift 2
    printf '%s\n' "$@" > "$name.ext"
    openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subj" 2>/dev/null
    openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$name.crt" -days 2 -extfile "$name.ext" 2>/dev/null
  }
  sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" \
    "subjectAltName=IP:$KUBERNETES_SVC_IP,IP:$NODE_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost"
  sign kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "basicConstraints=CA:FALSE" \
    "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=clientAuth"
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
)
tok() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
admin_token=$(tok)
node_token=$(tok)
# token,user,uid,"group1,group2"
cat > "$pki/tokens.csv" <<EOT
$admin_token,serbero-k8s-admin,admin,"system:masters"
$node_token,system:node:$NODE_NAME,kubelet,"system:nodes"
EOT
chmod 600 "$pki"/*.key "$pki/tokens.csv"
kubeconfig() { # file token
  cat > "$1" <<EOT
apiVersion: v1
kind: Config
clusters:
- name: serbero-k8s
  cluster:
    server: https://$NODE_IP:$APISERVER_PORT
    certificate-authority: $pki/ca.crt
users:
- name: user
  user:
    token: $2
contexts:
- name: serbero-k8s
  context: {cluster: serbero-k8s, user: user}
current-context: serbero-k8s
EOT
  chmod 600 "$1"
}
kubeconfig "$K8S_DIR/admin.kubeconfig" "$admin_token"
kubeconfig "$K8S_DIR/kubelet.kubeconfig" "$node_token"

# ---- etcd (on a tmpfs: nothing here needs to survive, and fsync is slow) -------
log "etcd on 127.0.0.1:$ETCD_PORT"
mount -t tmpfs -o size=1g,mode=0700 tmpfs "$K8S_DIR/etcd"
start etcd etcd --name default --data-dir "$K8S_DIR/etcd/data" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "" --logger zap --log-level warn
wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

# ---- control plane ------------------------------------------------------------
log "kube-apiserver on $NODE_IP:$APISERVER_PORT"
start kube-apiserver "$K8S_BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port "$APISERVER_PORT" \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" --token-auth-file "$pki/tokens.csv" \
  --kubelet-client-certificate "$pki/kubelet-client.crt" --kubelet-client-key "$pki/kubelet-client.key" \
  --kubelet-preferred-address-types InternalIP \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --feature-gates SizeBasedListCostEstimate=false \
  --profiling=false --v 1
wait_for "kube-apiserver /readyz" 120 "$KUBECTL" get --raw /readyz

log "kube-controller-manager, kube-scheduler"
start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig "$KUBECONFIG" --authentication-kubeconfig "$KUBECONFIG" --authorization-kubeconfig "$KUBECONFIG" \
  --bind-address 127.0.0.1 --leader-elect=false \
  --controllers '*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller' \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --cluster-cidr "$POD_CIDR" --service-cluster-ip-range "$SERVICE_CIDR" \
  --node-monitor-grace-period 20s --profiling=false --v 1
start kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig "$KUBECONFIG" --authentication-kubeconfig "$KUBECONFIG" --authorization-kubeconfig "$KUBECONFIG" \
  --bind-address 127.0.0.1 --leader-elect=false --profiling=false --v 1

# ---- containerd + runc, the bridge CNI ---------------------------------------
log "containerd (private instance under $K8S_DIR/containerd)"
for p in bridge host-local loopback; do cp "/usr/lib/cni/$p" "$K8S_DIR/cni/bin/$p.real"; done
# Each plugin is wrapped to record the network namespaces it is given, so
# down.sh removes exactly ours even if containerd is gone.
for p in bridge host-local loopback; do
  cat > "$K8S_DIR/cni/bin/$p" <<EOT
#!/bin/sh
echo "\$CNI_COMMAND \$CNI_CONTAINERID \$CNI_NETNS" >> "$K8S_DIR/cni/netns.log"
exec "$K8S_DIR/cni/bin/$p.real" "\$@"
EOT
  chmod +x "$K8S_DIR/cni/bin/$p"
done
cat > "$K8S_DIR/cni/net.d/10-srbk8s.conflist" <<EOT
{
  "cniVersion": "0.4.0",
  "name": "srbk8s",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$K8S_DIR/cni/ipam"
      }
    }
  ]
}
EOT
cat > "$K8S_DIR/containerd/config.toml" <<EOT
version = 2
root = "$K8S_DIR/containerd/root"
state = "$K8S_DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$K8S_DIR/containerd/containerd.sock"
[ttrpc]
  address = "$K8S_DIR/containerd/containerd.sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$K8S_DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Without these four every sandbox fails on this VM with "can't get final
  # child's PID from pipe: EOF" (raising rlimits and unprivileged ports/ICMP
  # sysctls are not permitted; there is no AppArmor).
  restrict_oom_score_adj = true
  enable_unprivileged_ports = false
  enable_unprivileged_icmp = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$K8S_DIR/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$K8S_DIR/cni/bin"
    conf_dir = "$K8S_DIR/cni/net.d"
EOT
start containerd containerd --config "$K8S_DIR/containerd/config.toml"
wait_for containerd 30 "${CTR[@]}" version

# ---- images (built offline, imported) ------------------------------------------
"$root/scripts/k8s/images.sh"

# ---- kubelet -----------------------------------------------------------------
log "kubelet (node $NODE_NAME, $NODE_IP)"
: > "$K8S_DIR/resolv.conf"
cat > "$K8S_DIR/kubelet/config.yaml" <<EOT
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$K8S_DIR/containerd/containerd.sock
# This VM: cgroup v1 controllers beside a v2 hierarchy, no systemd, swap
# irrelevant, no QoS cgroup tree or node allocatable enforcement.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
localStorageCapacityIsolation: false
clusterDNS: [$GATEWAY]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $K8S_DIR/resolv.conf
podCIDR: $POD_SUBNET
podLogsDir: $K8S_DIR/pod-logs
maxPods: 60
serializeImagePulls: false
# Images cannot be pulled again here: never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%"}
rotateCertificates: false
volumePluginDir: $K8S_DIR/kubelet/volume-plugins
EOT
start kubelet "$K8S_BIN/kubelet" --config "$K8S_DIR/kubelet/config.yaml" --kubeconfig "$K8S_DIR/kubelet.kubeconfig" \
  --root-dir "$K8S_DIR/kubelet" --cert-dir "$K8S_DIR/kubelet/pki" --node-ip "$NODE_IP" \
  --hostname-override "$NODE_NAME" --pod-infra-container-image "$PAUSE_IMAGE" --v 1

# ---- kube-proxy (iptables) ---------------------------------------------------
log "kube-proxy (iptables mode)"
cat > "$K8S_DIR/kube-proxy.yaml" <<EOT
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $KUBECONFIG}
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
nodePortAddresses: ["$NODE_IP/32"]
iptables: {localhostNodePorts: false}
# 0: leave the machine's conntrack sysctls as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOT
start kube-proxy "$K8S_BIN/kube-proxy" --config "$K8S_DIR/kube-proxy.yaml" --v 1

# ---- Postgres for the pods ---------------------------------------------------
log "Postgres for the pods on $GATEWAY:$PG_PORT (and 127.0.0.1:$PG_PORT)"
mkdir -p "$K8S_DIR/pg" "$K8S_DIR/pgsock"
chown postgres:postgres "$K8S_DIR/pg" "$K8S_DIR/pgsock"
runuser -u postgres -- "$PG_BIN/initdb" -D "$K8S_DIR/pg/data" -U postgres --auth=trust -E UTF8 >/dev/null
cat >> "$K8S_DIR/pg/data/pg_hba.conf" <<EOT
host all all $POD_SUBNET trust
EOT
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$K8S_DIR/pg/data" -l "$K8S_DIR/pg/postgres.log" -w -t 60 \
  -o "-c listen_addresses=$GATEWAY,127.0.0.1 -p $PG_PORT -k $K8S_DIR/pgsock -c fsync=off -c max_connections=300" start >/dev/null

# ---- wait for the node -------------------------------------------------------
wait_for "node $NODE_NAME Ready" 180 sh -c "'$KUBECTL' get node '$NODE_NAME' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
# The node-lifecycle controller lifts the not-ready taint once the node is Ready.
wait_for "the not-ready taint lifted" 60 sh -c "! '$KUBECTL' get node '$NODE_NAME' -o jsonpath='{.spec.taints}' | grep -q not-ready"
wait_for "the default ServiceAccount" 60 "$KUBECTL" -n default get serviceaccount default

# ---- CoreDNS (on the host, serving the bridge) --------------------------------
log "CoreDNS on $GATEWAY:53"
cat > "$K8S_DIR/Corefile" <<EOT
$CLUSTER_DOMAIN:53 {
  bind $GATEWAY
  errors
  kubernetes $CLUSTER_DOMAIN {
    kubeconfig $KUBECONFIG
  }
}
.:53 {
  bind $GATEWAY
  ready 127.0.0.1:$COREDNS_READY_PORT
  errors
  # Nothing outside the cluster is resolvable from here: answer at once.
  template ANY ANY {
    rcode NXDOMAIN
  }
}
EOT
start coredns "$K8S_BIN/coredns" -conf "$K8S_DIR/Corefile"
wait_for "CoreDNS ready" 60 curl -sf "http://127.0.0.1:$COREDNS_READY_PORT/ready"

cat > "$K8S_DIR/cluster.env" <<EOT
K8S_DIR=$K8S_DIR
KUBECONFIG=$KUBECONFIG
KUBECTL=$KUBECTL
K8S_NODE_IP=$NODE_IP
K8S_GATEWAY=$GATEWAY
K8S_PG_ADMIN_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable
K8S_PG_POD_HOST=$GATEWAY
K8S_PG_PORT=$PG_PORT
K8S_SERBERO_IMAGE_REPO=$SERBERO_IMAGE_REPO
K8S_SERBERO_IMAGE_TAGS=$(cat "$K8S_DIR/images/serbero-tags")
EOT
"$KUBECTL" get node -o wide
log "cluster up: export KUBECONFIG=$KUBECONFIG (settings in $K8S_DIR/cluster.env); make k8s-down tears it down"
