#!/usr/bin/env bash
# Build the images offline and import them into the test cluster's containerd
# (nothing can be pulled here): the serbero image, assembled from the
# Dockerfile's final stage by deploy/ociimage around `make build`'s binary,
# under two tags (their version labels differ, so they are two images: the
# tests upgrade from one to the other), and the kubelet's pause image. Run by
# up.sh; run it again after changing the code (make k8s-image).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

out=$K8S_DIR/images
mkdir -p "$out"
tool=$out/ociimage
(cd "$root" && go build -o "$tool" ./deploy/ociimage/cmd/ociimage)
version=$(git -C "$root" describe --always --dirty 2>/dev/null || echo dev)
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
epoch=$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)
make -s -C "$root" build BIN="$out/bin" VERSION="$version"

tags="ci-1 ci-2"
for tag in $tags; do
  "$tool" --dockerfile "$root/Dockerfile" --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
    --label "org.opencontainers.image.version=$version+$tag" --created "$epoch" \
    --name "$SERBERO_IMAGE_REPO:$tag" --binary "$out/bin/serbero" --out "$out/serbero-$tag.tar" >/dev/null
done
"$tool" --name "$PAUSE_IMAGE" --binary "$K8S_BIN/pause" --user 65535:65535 --ca-certs "" --zoneinfo "" \
  --created "$epoch" --out "$out/pause.tar" >/dev/null

for f in "$out"/pause.tar "$out"/serbero-*.tar; do
  "${CTR[@]}" images import "$f" >/dev/null
done
echo "$tags" > "$out/serbero-tags"
log "images loaded: $("${CTR[@]}" images ls -q | grep -E 'serbero|pause' | tr '\n' ' ')"
