# Serbero's single entry point. `make help` lists the targets.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

BIN       := $(CURDIR)/bin
PKGS      := github.com/serbero/serbero/...
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# Every Go module of the workspace (tools/ is separate on purpose).
MODULES   := . gen/go pkg pkg/mostro pkg/testkit services/relaygw services/intakesvc services/authsvc services/mediationsvc services/escalationsvc
# Tools are built from their own pinned modules, outside the workspace.
TOOLENV   := GOWORK=off GOFLAGS=-mod=mod
GOTEST    ?= go test
TESTFLAGS ?= -count=1 -timeout 20m

export GOTOOLCHAIN := local

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_\/-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: dev
dev: build ## run every service in one process, with a local Postgres and an embedded relay
	scripts/dev.sh

.PHONY: dev/stop-db
dev/stop-db: ## stop the private Postgres that make dev started under .data/pg (if any)
	@if [ -f .data/pg/postmaster.pid ]; then \
	  bin=$$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); \
	  if [ "$$(id -u)" = 0 ]; then runuser -u postgres -- $$bin/pg_ctl -D .data/pg stop; else $$bin/pg_ctl -D .data/pg stop; fi; \
	else echo "no private Postgres running"; fi

.PHONY: test
test: ## run every test of every module under the race detector (needs Postgres; see README)
	$(GOTEST) -race $(TESTFLAGS) $(PKGS)

.PHONY: bench
bench: ## run the benchmarks (results in the closing notes and README)
	go test -run '^$$' -bench . -benchtime 2s -timeout 30m $(PKGS)

.PHONY: build
build: ## build bin/serbero (static, CGO_ENABLED=0: the binary the Dockerfile ships)
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)/serbero ./cmd/serbero

.PHONY: tools
tools: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc ## build the pinned code generators into bin/

$(BIN)/buf: tools/buf/go.mod
	cd tools/buf && $(TOOLENV) go build -o $(BIN)/buf github.com/bufbuild/buf/cmd/buf
$(BIN)/protoc-gen-go: tools/go.mod
	cd tools && $(TOOLENV) go build -o $(BIN)/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
$(BIN)/protoc-gen-go-grpc: tools/go.mod
	cd tools && $(TOOLENV) go build -o $(BIN)/protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc
$(BIN)/helm: tools/helm/go.mod
	cd tools/helm && $(TOOLENV) go build -o $(BIN)/helm helm.sh/helm/v3/cmd/helm
$(BIN)/kubectl-validate: tools/kubectl-validate/go.mod
	cd tools/kubectl-validate && $(TOOLENV) go build -o $(BIN)/kubectl-validate sigs.k8s.io/kubectl-validate

.PHONY: generate
generate: tools ## regenerate gen/go from proto/ (offline, pinned plugins)
	$(BIN)/buf generate

.PHONY: verify
verify: tools ## fail if generated code drifts from proto/, buf lint fails, or a module is untidy
	$(BIN)/buf lint
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	  $(BIN)/buf generate -o $$tmp; \
	  if ! diff -r $$tmp/gen/go/serbero gen/go/serbero >/dev/null; then \
	    diff -r $$tmp/gen/go/serbero gen/go/serbero | head -40; \
	    echo "generated code is out of date: run make generate"; exit 1; fi
	@for m in $(MODULES); do \
	  (cd $$m && GOWORK=off go mod tidy -diff >/dev/null) || { echo "module $$m is not tidy: run make tidy"; exit 1; }; \
	done
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

.PHONY: lint
lint: verify ## buf lint, go vet in every module, gofmt
	go vet $(PKGS)

.PHONY: tidy
tidy: ## go mod tidy every module
	@for m in $(MODULES); do (cd $$m && GOWORK=off go mod tidy); done

.PHONY: modules
modules: ## build every module on its own (no go.work), as Docker and tidy do
	@for m in $(MODULES); do (cd $$m && GOWORK=off go build ./...) || exit 1; done

.PHONY: clean
clean: ## remove build output (not the dev database)
	rm -rf $(BIN)/serbero

# ---- Helm chart and image (deploy/; docs/deploy.md) -------------------------
# helm-check is what CI runs for deploy/ (.ci/run calls it after make test):
# helm lint --strict and helm template for every value set in deploy/k8s/ci,
# each rendered manifest validated offline against the Kubernetes schemas
# (kubectl-validate's built-in ones, plus the ServiceMonitor CRD), then the
# chart and image tests (go test -tags chart ./deploy/...).

CHART        := deploy/k8s
# Kubernetes version rendered for and validated against (kubectl-validate's built-in schemas).
CHART_KUBE   := 1.30
CHART_VALUES := $(sort $(wildcard $(CHART)/ci/*-values.yaml))
CHART_OUT    := $(CURDIR)/out/chart
CHART_CRDS   := deploy/charttest/testdata/crds

.PHONY: helm-check
helm-check: helm-lint helm-validate helm-test ## lint, render and validate the chart for every ci value set, then the chart tests

.PHONY: helm-lint
helm-lint: $(BIN)/helm ## helm lint --strict the chart with every ci value set
	@for f in $(CHART_VALUES); do \
	  echo "helm lint --strict -f $$f"; \
	  $(BIN)/helm lint --strict --quiet --kube-version $(CHART_KUBE) -f $$f $(CHART) || exit 1; \
	done

.PHONY: helm-template
helm-template: $(BIN)/helm ## render every ci value set into out/chart/
	@mkdir -p $(CHART_OUT)
	@for f in $(CHART_VALUES); do \
	  out=$(CHART_OUT)/$$(basename $$f .yaml).yaml; \
	  echo "helm template -f $$f > $$out"; \
	  $(BIN)/helm template serbero $(CHART) --namespace serbero --kube-version $(CHART_KUBE) -f $$f > $$out || exit 1; \
	done

.PHONY: helm-validate
helm-validate: helm-template $(BIN)/kubectl-validate ## validate the rendered manifests offline (kubectl-validate)
	$(BIN)/kubectl-validate --version $(CHART_KUBE) --local-crds $(CHART_CRDS) $(patsubst $(CHART)/ci/%.yaml,$(CHART_OUT)/%.yaml,$(CHART_VALUES))

.PHONY: helm-test
helm-test: $(BIN)/helm ## chart and image assertions: go test -tags chart ./deploy/...
	HELM=$(BIN)/helm go test -tags chart -count=1 ./deploy/...
