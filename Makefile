# caddy-direct-upload. `make demo` runs the product; `make test` runs every
# test CI runs. Both install what is missing into .cache/ (git-ignored).

SHELL     := /bin/bash
GO        ?= go
CACHE     := $(CURDIR)/.cache
BIN       := $(CACHE)/bin
VERSITYGW_VERSION := v1.8.0
XCADDY_VERSION    := v0.4.5

export CADDY_BIN     := $(BIN)/caddy
export VERSITYGW_BIN := $(BIN)/versitygw
export BACKEND_BIN   := $(BIN)/backend
# The fault-matrix tests write their counts here; make test prints them.
export FAULT_MATRIX_DIR := $(CACHE)/fault-matrix

.PHONY: all build tools receivers browser uppy test unit integration demo demo-fleet bench xcaddy fmt vet race clean fuzz fuzz-short

all: build

## build: the custom Caddy (standard modules + this plugin) and the example backend
build:
	@mkdir -p $(BIN)
	$(GO) build -o $(CADDY_BIN) ./cmd/caddy
	$(GO) build -o $(BACKEND_BIN) ./examples/backend

## tools: versitygw, the S3-compatible server that checks signatures and policies
tools: $(VERSITYGW_BIN)

$(VERSITYGW_BIN):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

$(BIN)/xcaddy:
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/caddyserver/xcaddy/cmd/xcaddy@$(XCADDY_VERSION)

## xcaddy: build Caddy with xcaddy from the manifest xcaddy.json
xcaddy: $(BIN)/xcaddy
	$(GO) run ./cmd/xbuild -manifest xcaddy.json -xcaddy $(BIN)/xcaddy -output $(BIN)/caddy-xcaddy

## receivers: npm packages of the Node webhook receiver example
receivers: examples/receivers/node/node_modules/.package-lock.json

examples/receivers/node/node_modules/.package-lock.json: examples/receivers/node/package-lock.json
	npm ci --prefix examples/receivers/node --no-audit --no-fund

## browser: Debian's Chromium and playwright-core for the real-browser tests
browser: module/integration/browser/node_modules/.package-lock.json
	@command -v chromium >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

module/integration/browser/node_modules/.package-lock.json: module/integration/browser/package-lock.json
	npm ci --prefix module/integration/browser --no-audit --no-fund

## uppy: rebuild the demo page's Uppy bundle (committed) from examples/uppy-bundle
uppy: examples/uppy-bundle/node_modules/.package-lock.json
	npm run --prefix examples/uppy-bundle build

examples/uppy-bundle/node_modules/.package-lock.json: examples/uppy-bundle/package-lock.json
	npm ci --prefix examples/uppy-bundle --no-audit --no-fund

## test: vet, then every test (unit, real S3 server, real Badger, the Caddy binary, real Chromium)
test: tools build receivers browser vet race fuzz-short
	$(GO) test -count=1 -timeout 20m ./...
	DIRECT_UPLOAD_TEST_STORE=postgres $(GO) test -count=1 -timeout 10m ./module/integration/
	@cat $(FAULT_MATRIX_DIR)/*.txt 2>/dev/null || true
	$(MAKE) xcaddy
	$(BIN)/caddy-xcaddy list-modules | grep -qx http.handlers.direct_upload
	@echo "xcaddy build from xcaddy.json has the plugin"

## race: the store's unit tests under the race detector
race:
	$(GO) test -race -count=1 ./module/store/...

## fuzz: every Go fuzz target (func FuzzX in a fuzz_test.go) for FUZZTIME each,
## one after another (go runs one -fuzz target per invocation); fuzz-short is
## the same for FUZZTIME_SHORT, and make test runs it. Their seeds also run as
## plain tests in go test. A failing input is saved under testdata/fuzz/.
FUZZTIME       ?= 60s
FUZZTIME_SHORT ?= 5s

fuzz:
	@set -e; for f in $$(find module -name fuzz_test.go | sort); do \
		d=./$$(dirname $$f); \
		for n in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "fuzz $$d $$n for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$n\$$" -fuzztime $(FUZZTIME) $$d; \
		done; \
	done

fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME_SHORT)

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

## demo: S3-compatible server + example backend + Caddy with Caddyfile.example
demo: tools build
	$(GO) build -o $(BIN)/demo ./examples/demo
	$(BIN)/demo

## bench: Go benchmarks, then the HTTP measurements against Caddy's ceiling (writes docs/bench/)
bench: tools build
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 30m ./... | tee $(CACHE)/gobench.txt
	$(GO) run ./cmd/benchrun -gobench $(CACHE)/gobench.txt -out docs/bench

## demo-fleet: PostgreSQL + two sidecar Caddy instances sharing it + a Caddy load balancer (Caddyfile.fleet.example)
demo-fleet: tools build
	$(GO) build -o $(BIN)/demo ./examples/demo
	$(BIN)/demo -fleet

clean:
	rm -rf $(CACHE)
