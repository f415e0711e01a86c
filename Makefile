# oidcgate — build, run and test. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
GO ?= go
BIN := bin/oidcgate
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Packages with concurrent code: run under the race detector in `make test`.
RACE_PKGS := ./provider/... ./migrations/... ./keys/... ./edge/... ./cache/...
FUZZTIME ?= 30s

.PHONY: help build run test lint bench bench-compare fault fuzz screenshots clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build bin/oidcgate (static: no cgo, runs in a scratch or distroless image)
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/oidcgate

DEMO := docs/demo/bootstrap.yaml

run: build ## run provider + edge (oidcgate all) on 127.0.0.1 with the demo clients, a demo upstream, state in ./data
	@echo "oidcgate demo"
	@echo "  issuer:         http://127.0.0.1:8080   (discovery: http://127.0.0.1:8080/.well-known/openid-configuration)"
	@echo "  client:         demo / demo-secret-0123456789abcdefghijklmnop   (client_credentials, JWT access tokens)"
	@echo "  opaque client:  demo-opaque / demo-opaque-secret-0123456789abcdefghij"
	@echo "  public client:  demo-spa   (redirect http://127.0.0.1:5555/callback)"
	@echo "  device client:  demo-cli   (device flow: bash docs/demo/device-flow.sh)"
	@echo "  user:           alice / alice-demo-password"
	@echo "  protected API:  http://127.0.0.1:8000/  (the edge, in front of a demo upstream on 127.0.0.1:8001)"
	@echo "  try:            curl -i http://127.0.0.1:8000/hello                                     # 401"
	@echo "                  TOKEN=\$$(curl -s -u demo:demo-secret-0123456789abcdefghijklmnop -d grant_type=client_credentials http://127.0.0.1:8080/token | jq -r .access_token)"
	@echo "                  curl -H \"Authorization: Bearer \$$TOKEN\" http://127.0.0.1:8000/hello      # 200"
	@echo "  admin API:      curl -H 'Authorization: Bearer oidcgate-demo-admin-token-0123456789abcdef' http://127.0.0.1:8081/admin/v1/clients"
	@echo "  metrics:        http://127.0.0.1:9090/metrics"
	@echo "  connectors:     sign in with upstream OIDC, GitHub or LDAP: copy docs/demo/connectors.example.yaml, pass --config FILE (README: Connectors; docs/connectors.md)"
	./$(BIN) echo --addr 127.0.0.1:8001 & echo_pid=$$!; trap 'kill $$echo_pid 2>/dev/null' EXIT INT TERM; \
	./$(BIN) all --issuer http://127.0.0.1:8080 --public-addr 127.0.0.1:8080 --admin-addr 127.0.0.1:8081 \
		--ops-addr 127.0.0.1:9090 --edge-addr 127.0.0.1:8000 --upstream http://127.0.0.1:8001 \
		--audience https://api.example.com --bootstrap $(DEMO)

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Unit and integration tests (PostgreSQL at OIDCGATE_TEST_DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/test), fuzz seed corpora, then the
# concurrent packages again under -race, showing each conformance run.
test: lint ## run every test, the fuzz seed corpora, and -race on the concurrent packages
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -race -v $(RACE_PKGS) 2>&1 | grep -E '^(--- |ok |FAIL|panic:|\s+pgtest.go)|^\s+--- (FAIL|SKIP)'

screenshots: ## the sign-in, second-factor and account pages at phone width (headless Chromium) into docs/screenshots
	mkdir -p docs/screenshots
	OIDCGATE_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run TestPagesAtPhoneWidth ./provider

bench: ## run the micro-benchmarks, then the ratio tables of docs/benchmarks.md (keys, edge)
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) test -run '^$$' -bench 'Sign|Verify' -benchmem -count 8 -cpu 1 ./keys | tee /dev/stderr | awk -f bench/ratio.awk
	for i in 1 2 3 4 5; do $(GO) test -run '^$$' -bench . -benchmem -count 1 -cpu 1 ./edge; done | tee /dev/stderr | awk -f bench/ratio.awk

bench-compare: ## oidcgate beside the Node oidc-provider, pinned to separate CPUs; writes bench/compare/results.md
	bash bench/compare/run.sh

fault: ## refresh chains under kill -9 (bolt); FAULT=postgres stops the local PostgreSQL for 10 s instead
	bash bench/fault/refresh-chains.sh $(or $(FAULT),kill)

fuzz: ## fuzz every Fuzz target for FUZZTIME each (default 30s)
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

clean: ## remove build output (not ./data)
	rm -rf bin
