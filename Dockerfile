# syntax=docker/dockerfile:1
#
# One image for every Serbero component: the static `serbero` binary on
# distroless static, running as uid 65532 (nonroot). The Helm chart picks the
# component with `serve --target=<component>`; its migration Job runs
# `migrate up`. Build from the repository root:
#
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t serbero:dev .
#
# Multi-arch (the builder cross-compiles; nothing runs under emulation):
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --always --dirty) -t <registry>/serbero:<tag> --push .
#
# The go build line is `make build`'s (deploy/charttest checks that they match).

FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src
ENV GOTOOLCHAIN=local
COPY . .
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/serbero ./cmd/serbero

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/serbero /serbero
USER 65532:65532
ENTRYPOINT ["/serbero"]
CMD ["version"]
