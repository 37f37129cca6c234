#!/usr/bin/env bash
# Build the local test cluster's binaries from tools/k8s (pinned modules) into
# bin/k8s/: the Kubernetes components and kubectl (k8s.io/kubernetes), CoreDNS
# with a minimal plugin set, and the pod sandbox's pause process. One go build
# for all of them, so they share the compile of client-go & co.; a warm Go
# build cache makes this a few seconds. Usage: scripts/k8s/build.sh [outdir]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/bin/k8s}
mkdir -p "$out"
cd "$root/tools/k8s"
version=$(GOWORK=off go list -m -f '{{.Version}}' k8s.io/kubernetes)
minor=$(echo "$version" | cut -d. -f2)
# The version the components report (kubectl version, the node's kubeletVersion,
# Helm's kubeVersion check); go build alone would say v0.0.0-master.
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local
start=$(date +%s)
nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$out/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubelet \
  k8s.io/kubernetes/cmd/kube-proxy \
  k8s.io/kubernetes/cmd/kubectl \
  ./coredns ./pause
echo "built $(ls "$out" | tr '\n' ' ')in $(( $(date +%s) - start ))s ($version)"
