# keyferry — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/keyferry
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/keyferry/keyferry/internal/cli.Version=$(VERSION)
PKGS := ./...

.DEFAULT_GOAL := help

.PHONY: help
help: ## show this help
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/keyferry
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/keyferry

.PHONY: demo
demo: build ## run the whole pipeline locally: dev broker + SeaweedFS + aws s3 cp
	./scripts/demo.sh

.PHONY: test
test: deps test-unit cross test-e2e ## install what the tests need, then run every test

.PHONY: deps
deps: ## install the e2e peers and clients (SeaweedFS, versitygw, aws-cli v2, botocore)
	./scripts/peers.sh clients
	./scripts/peers.sh seaweedfs
	./scripts/peers.sh versitygw

.PHONY: test-unit
test-unit: ## unit, conformance and repo-rule tests (fast)
	$(GO) vet $(PKGS)
	$(GO) test -count=1 $(PKGS)

.PHONY: cross
cross: ## build for Windows and macOS, and vet the runner side there (the job-side commands run on them)
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./cmd/keyferry
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./cmd/keyferry
	GOOS=windows GOARCH=amd64 $(GO) vet ./internal/api/... ./internal/client/... ./internal/delivery/... ./internal/tokensource/...
	GOOS=darwin GOARCH=arm64 $(GO) vet ./internal/api/... ./internal/client/... ./internal/delivery/... ./internal/tokensource/...

.PHONY: test-race
test-race: ## unit tests under the race detector
	$(GO) test -race -count=1 ./internal/...

.PHONY: test-e2e
test-e2e: build ## end-to-end tests: real binary, SeaweedFS, aws-cli v2, botocore, Go SDK
	KEYFERRY_BIN=$(CURDIR)/$(BIN) $(GO) test -tags e2e -count=1 -timeout 20m ./test/e2e/...

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each (default 20s)
	./scripts/fuzz.sh $${FUZZTIME:-20s}

.PHONY: bench
bench: ## micro-benchmarks and the load generator (see docs/benchmarks.md)
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...
	$(GO) run ./bench/loadgen -c 1,16,64 -d 10s

.PHONY: lint
lint: ## gofmt, go vet, go mod tidy check
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)
	$(GO) mod tidy -diff

.PHONY: clean
clean: ## remove build output
	rm -rf bin
