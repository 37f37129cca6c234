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
dev/stop-db: ## stop the private Postgres that make dev or make test started under .data/pg (if any)
	scripts/postgres.sh stop

# make test and make dev share one Postgres: $TEST_DATABASE_URL if set
# (used as is: a dead URL fails the tests loudly), else 127.0.0.1:5432 if it
# answers, else a private cluster under .data/pg (scripts/postgres.sh).
TESTDB = $$(PG_URL="$${TEST_DATABASE_URL:-}" scripts/postgres.sh url)

.PHONY: test
test: ## run every test of every module under the race detector (finds or starts Postgres: scripts/postgres.sh)
	@url=$(TESTDB); echo "TEST_DATABASE_URL=$$url"; \
	  TEST_DATABASE_URL=$$url $(GOTEST) -race $(TESTFLAGS) $(PKGS)

.PHONY: fuzz
fuzz: ## run every fuzz target of every module for FUZZTIME each (default 1m; CI runs 5s; see scripts/fuzz.sh)
	FUZZTIME=$${FUZZTIME:-1m} scripts/fuzz.sh

.PHONY: bench
bench: ## run the benchmarks (results in the closing notes and README)
	go test -run '^$$' -bench . -benchtime 2s -timeout 30m $(PKGS)

.PHONY: build
build: ## build bin/serbero (static, CGO_ENABLED=0: the binary the Dockerfile ships)
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)/serbero ./cmd/serbero

# The package patterns of every module, for tools that take one list.
MODPATTERNS := ./... $(patsubst %,./%/...,$(filter-out .,$(MODULES)))
GENERATORS := $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc

.PHONY: tools
tools: $(GENERATORS) $(BIN)/golangci-lint ## build the pinned code generators and the linter into bin/

$(BIN)/buf: tools/buf/go.mod
	cd tools/buf && $(TOOLENV) go build -o $(BIN)/buf github.com/bufbuild/buf/cmd/buf
$(BIN)/protoc-gen-go: tools/go.mod
	cd tools && $(TOOLENV) go build -o $(BIN)/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
$(BIN)/protoc-gen-go-grpc: tools/go.mod
	cd tools && $(TOOLENV) go build -o $(BIN)/protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc
$(BIN)/golangci-lint: tools/golangci-lint/go.mod
	cd tools/golangci-lint && $(TOOLENV) go build -o $(BIN)/golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint
$(BIN)/helm: tools/helm/go.mod
	cd tools/helm && $(TOOLENV) go build -o $(BIN)/helm helm.sh/helm/v3/cmd/helm
$(BIN)/kubectl-validate: tools/kubectl-validate/go.mod
	cd tools/kubectl-validate && $(TOOLENV) go build -o $(BIN)/kubectl-validate sigs.k8s.io/kubectl-validate

.PHONY: generate
generate: $(GENERATORS) ## regenerate gen/go from proto/ (offline, pinned plugins)
	$(BIN)/buf generate

.PHONY: verify
verify: $(GENERATORS) ## fail if generated code drifts from proto/, buf lint fails, a module is untidy or modules disagree on a version
	$(BIN)/buf lint
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	  $(BIN)/buf generate -o $$tmp; \
	  if ! diff -r $$tmp/gen/go/serbero gen/go/serbero >/dev/null; then \
	    diff -r $$tmp/gen/go/serbero gen/go/serbero | head -40; \
	    echo "generated code is out of date: run make generate"; exit 1; fi
	@for m in $(MODULES); do \
	  (cd $$m && GOWORK=off go mod tidy -diff >/dev/null) || { echo "module $$m is not tidy: run make tidy"; exit 1; }; \
	done
	@scripts/modules.sh check
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

.PHONY: lint
lint: $(BIN)/golangci-lint ## golangci-lint (.golangci.yml) over every module
	$(BIN)/golangci-lint run $(MODPATTERNS)

.PHONY: vet
vet: ## go vet every package of every module
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
helm-check: helm-lint helm-validate helm-docs-check helm-test ## lint, render and validate the chart for every ci value set, README drift, then the chart tests

$(BIN)/helm-docs: tools/helm-docs/go.mod
	cd tools/helm-docs && $(TOOLENV) go build -o $(BIN)/helm-docs github.com/norwoodj/helm-docs/cmd/helm-docs

# helm-docs writes deploy/k8s/README.md from README.md.gotmpl and values.yaml's `# --` comments.
HELM_DOCS_ARGS = --chart-search-root deploy --template-files README.md.gotmpl --sort-values-order file

.PHONY: helm-docs
helm-docs: $(BIN)/helm-docs ## regenerate deploy/k8s/README.md (the parameters table) from values.yaml
	$(BIN)/helm-docs $(HELM_DOCS_ARGS)

.PHONY: helm-docs-check
helm-docs-check: $(BIN)/helm-docs ## fail if deploy/k8s/README.md is not what helm-docs generates
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; cp -r deploy/k8s $$tmp/k8s; \
	  $(BIN)/helm-docs --chart-search-root $$tmp --template-files README.md.gotmpl --sort-values-order file >/dev/null; \
	  if ! diff -u deploy/k8s/README.md $$tmp/k8s/README.md; then \
	    echo "deploy/k8s/README.md is out of date: run make helm-docs"; exit 1; fi

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

# ---- Alert rules and dashboard (deploy/monitoring; docs/deploy.md#alerts) ----
# The rules are written once, in the chart (deploy/k8s/templates/_alerts.tpl);
# deploy/monitoring/serbero-rules.yaml is them rendered with the default
# thresholds (a chart test fails when it drifts). promtool is built from its
# pinned module in tools/promtool.

$(BIN)/promtool: tools/promtool/go.mod
	cd tools/promtool && $(TOOLENV) go build -o $(BIN)/promtool github.com/prometheus/prometheus/cmd/promtool

.PHONY: rules
rules: $(BIN)/promtool ## promtool check rules and promtool test rules (deploy/monitoring/tests) on the alert rules
	$(BIN)/promtool check rules deploy/monitoring/serbero-rules.yaml
	$(BIN)/promtool test rules deploy/monitoring/tests/*.yaml

.PHONY: rules-generate
rules-generate: $(BIN)/helm ## rewrite deploy/monitoring/serbero-rules.yaml from the chart; copy the dashboard into the chart
	cp deploy/monitoring/serbero-dashboard.json deploy/k8s/files/grafana/serbero-dashboard.json
	HELM=$(BIN)/helm go test -tags chart -count=1 -run '^TestPlainRulesFileIsTheChartsRules$$' ./deploy/charttest -update-rules

# ---- k8s: the chart on a real single-node cluster (scripts/k8s; docs/deploy.md) ----
# A local Kubernetes built from pinned sources (tools/k8s), state under
# /tmp/serbero-k8s, torn down by k8s-down even after a failure. Needs root.
# .ci/run runs k8s-ci.

K8S_BIN := $(BIN)/k8s

.PHONY: k8s-build
k8s-build: ## build the pinned Kubernetes components, kubectl, CoreDNS and pause into bin/k8s
	scripts/k8s/build.sh $(K8S_BIN)

.PHONY: k8s-up
k8s-up: k8s-build $(BIN)/helm ## start the single-node test cluster (root; KUBECONFIG=/tmp/serbero-k8s/admin.kubeconfig)
	scripts/k8s/up.sh

.PHONY: k8s-down
k8s-down: ## tear the test cluster down: processes, mounts, bridge, iptables, state (idempotent)
	scripts/k8s/down.sh

.PHONY: k8s-image
k8s-image: ## rebuild the serbero image offline and load it into the running test cluster
	scripts/k8s/images.sh

.PHONY: k8s-test
k8s-test: $(BIN)/helm ## run the chart's cluster tests on the running test cluster
	HELM=$(BIN)/helm go test -tags cluster -count=1 -timeout 40m -v ./deploy/clustertest/

.PHONY: k8s-ci
k8s-ci: ## build, bring the cluster up, run the cluster tests, tear down (a report on failure)
	scripts/k8s/ci.sh
