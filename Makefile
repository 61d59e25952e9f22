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

# How xcaddy $(XCADDY_VERSION) builds Caddy (its builder.go: CGO_ENABLED=0 and
# these flags). Our Caddy is built the same way, so `make xcaddy` finds every
# package already compiled in the Go build cache and only links; with cgo on
# (Go's default when gcc is installed) or without -trimpath, every package
# differs and xcaddy compiled Caddy again from scratch.
XCADDY_BUILD := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-w -s" -tags nobadger,nomysql,nopgx

# What `make test` needs before `go test`; add a target's name here to run
# it first.
TEST_DEPS := vet tools build receivers browser clamav xcaddy-check race fuzz-short

.PHONY: all build tools receivers browser clamav uppy test go-test xcaddy-check demo demo-fleet bench xcaddy vet race fuzz fuzz-short clean

all: build

## build: the custom Caddy (standard modules + this plugin) and the example backend
build:
	@mkdir -p $(BIN)
	$(XCADDY_BUILD) -o $(CADDY_BIN) ./cmd/caddy
	$(GO) build -o $(BACKEND_BIN) ./examples/backend

## tools: versitygw, the S3-compatible server that checks signatures and policies
tools: $(VERSITYGW_BIN)

$(VERSITYGW_BIN):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

$(BIN)/xcaddy:
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/caddyserver/xcaddy/cmd/xcaddy@$(XCADDY_VERSION)

## xcaddy: build Caddy with xcaddy from the manifest xcaddy.json (after
## `make build`, only the link is new)
xcaddy: $(BIN)/xcaddy
	$(GO) run ./cmd/xbuild -manifest xcaddy.json -xcaddy $(BIN)/xcaddy -output $(BIN)/caddy-xcaddy

## xcaddy-check: the xcaddy build from xcaddy.json has the plugin
xcaddy-check: build
	$(MAKE) --no-print-directory xcaddy
	$(BIN)/caddy-xcaddy list-modules | grep -qx http.handlers.direct_upload
	@echo "xcaddy build from xcaddy.json has the plugin"

## receivers: npm packages of the Node webhook receiver example
receivers: examples/receivers/node/node_modules/.package-lock.json

examples/receivers/node/node_modules/.package-lock.json: examples/receivers/node/package-lock.json
	npm ci --prefix examples/receivers/node --no-audit --no-fund

## browser: Debian's Chromium and playwright-core for the real-browser tests
browser: module/integration/browser/node_modules/.package-lock.json
	@command -v chromium >/dev/null || { \
	  echo "browser: chromium is not installed; the real-browser tests (module/integration/browser) need it."; \
	  echo "browser: installing Debian's chromium with its dependencies only (no recommends), upgrading"; \
	  echo "browser: installed packages only where chromium requires it; apt lists them (NEW, upgraded) below."; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends --no-upgrade chromium; }

module/integration/browser/node_modules/.package-lock.json: module/integration/browser/package-lock.json
	npm ci --prefix module/integration/browser --no-audit --no-fund

## clamav: Debian's clamav-daemon, for the malware-scan test (module/integration/scan_test.go)
clamav:
	@command -v clamd >/dev/null || { \
	  echo "clamav: clamd is not installed; the malware-scan test (module/integration/scan_test.go) starts one."; \
	  echo "clamav: installing Debian's clamav-daemon with its dependencies only (no recommends), upgrading"; \
	  echo "clamav: installed packages only where it requires it; the test writes its own signature database (no download)."; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends --no-upgrade clamav-daemon; }

## uppy: rebuild the demo page's Uppy bundle (committed) from examples/uppy-bundle
uppy: examples/uppy-bundle/node_modules/.package-lock.json
	npm run --prefix examples/uppy-bundle build

examples/uppy-bundle/node_modules/.package-lock.json: examples/uppy-bundle/package-lock.json
	npm ci --prefix examples/uppy-bundle --no-audit --no-fund

## test: vet, the xcaddy build, then every test (unit, real S3 server, real
## Badger, the Caddy binary, real Chromium); ends with a count line
test: go-test

## go-test: `go test ./...` summarized by cmd/testsum (failed tests by name,
## then "N passed, N failed, N skipped")
go-test: $(TEST_DEPS)
	rm -rf $(FAULT_MATRIX_DIR)
	set -o pipefail; { r=0; $(GO) test -json -count=1 -timeout 20m ./... || r=1; \
	  echo "store matrix: the flow, webhook and lifecycle tests again on PostgreSQL" >&2; \
	  DIRECT_UPLOAD_TEST_STORE=postgres $(GO) test -json -count=1 -timeout 10m ./module/integration/ || r=1; \
	  exit $$r; } | $(GO) run ./cmd/testsum -notes $(FAULT_MATRIX_DIR)

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
	@set -e; mkdir -p $(CACHE); for f in $$(find module -name fuzz_test.go | sort); do \
		d=./$$(dirname $$f); \
		for n in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "fuzz $$d $$n for $(FUZZTIME)"; \
			if ! $(GO) test -run '^$$' -fuzz "^$$n\$$" -fuzztime $(FUZZTIME) $$d > $(CACHE)/fuzz.log 2>&1; then \
				cat $(CACHE)/fuzz.log; \
				if grep -q 'context deadline exceeded' $(CACHE)/fuzz.log && ! grep -q 'Failing input written' $(CACHE)/fuzz.log; then \
					echo "fuzz $$n: 'context deadline exceeded' at the -fuzztime boundary with no failing input: Go's coordinator race (go.dev/issue/75804, fixed in Go 1.27); once more"; \
					$(GO) test -run '^$$' -fuzz "^$$n\$$" -fuzztime $(FUZZTIME) $$d; \
				else exit 1; fi; \
			else cat $(CACHE)/fuzz.log; fi; \
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
