# syntax=docker/dockerfile:1
#
# One image for every Serbero component: the static `serbero` binary on
# distroless static (CA certificates, tzdata, /etc/passwd with uid 65532),
# running as uid 65532 (nonroot). The Helm chart picks the component with
# `serve --target=<component>`; its migration Job runs `migrate up`. Build from
# the repository root with BuildKit (docker buildx), which sets TARGETOS and
# TARGETARCH for each platform:
#
#   docker buildx build --build-arg VERSION=$(git describe --always --dirty) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t serbero:dev --load .
#
# Multi-arch (the builder cross-compiles; nothing runs under emulation):
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --always --dirty) --build-arg REVISION=$(git rev-parse HEAD) \
#     -t <registry>/serbero:<tag> --push .
#
# Base images may be pinned by digest (golang:1.26-bookworm@sha256:…). Where
# no engine or registry is reachable, `make k8s-image` assembles the same
# final stage offline (deploy/ociimage reads this file's last stage).
# The go build line is `make build`'s (deploy/charttest checks that they match).

FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src
ENV GOTOOLCHAIN=local
COPY . .
ARG VERSION=dev
# No defaults: BuildKit sets both per target platform, and a default here
# would override it (an arm64 image would carry an amd64 binary).
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/serbero ./cmd/serbero

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="serbero" \
      org.opencontainers.image.description="Serbero: dispute coordination for Mostro on Nostr (every component, serbero serve --target=...)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/serbero /serbero
USER 65532:65532
ENTRYPOINT ["/serbero"]
CMD ["version"]
