# amtsbote — build, run and test. `make demo` and `make test` are the two set-up
# commands on a fresh machine (after .ci/run's installs, see README).

GO        ?= go
# The Go toolchain: 1.27.3 carries the fixes for thirteen vulnerabilities of the
# standard library that this gateway's code reaches (HTTP/2 and Range handling in
# net/http, MIME header limits, html/template's escaping, crypto/x509's distrust of
# compromised intermediates; govulncheck, `make vulncheck`). go.mod names it as its
# toolchain (read from there, as .ci/run does), its go line stays at 1.26.8 so that tools run with the machine's own Go
# (go vet) still work; the go command of an older machine fetches 1.27.3 once from the
# module proxy (~76 MB). A binary built with an older Go warns at start.
ifndef GOTOOLCHAIN
GOTOOLCHAIN := $(shell sed -n 's/^toolchain //p' go.mod)
endif
export GOTOOLCHAIN
BIN       := bin/amtsbote
FUZZTIME  ?= 10s
FUZZOTHER ?= 3s
FUZZLONG  ?= 5m
PKGS      := ./...
# mailpit, the real SMTP server of the mail notice tests, built once from the Go
# module proxy (outside this module, so go.mod stays as it is).
MAILPIT_VERSION := v1.33.1
MAILPIT   := $(CURDIR)/tools/bin/mailpit-$(MAILPIT_VERSION)
export MAILPIT_BIN := $(MAILPIT)
# promtool checks and unit-tests the alerting rules: Debian's (package prometheus,
# installed by .ci/run) when on PATH, otherwise built once from the Go module proxy
# (about 4 minutes; without the service discovery plugins promtool does not need here).
PROMTOOL_VERSION := v0.316.0
PROMTOOL  ?= $(shell command -v promtool 2>/dev/null || echo $(CURDIR)/tools/bin/promtool-$(PROMTOOL_VERSION))
# make lint's checkers, built once from the module proxy, and the vulnerability
# database's pinned day (see vulncheck).
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(CURDIR)/tools/bin/staticcheck-$(STATICCHECK_VERSION)
GOVULNCHECK_VERSION := v1.9.0
NILNESS_VERSION := v0.52.0
NILNESS := $(CURDIR)/tools/bin/nilness-$(NILNESS_VERSION)
GOVULNCHECK := $(CURDIR)/tools/bin/govulncheck-$(GOVULNCHECK_VERSION)
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018

.PHONY: all build run demo test vet staticcheck nilness vulncheck sbom unit allocs deploy-check bench-short fuzz-short fuzz bench soak bench-soak bench-history cluster-soak cluster-measure bigfile lint tools clean

all: build

# The version the binary reports (serve's banner, `amtsbote version`, the metric
# amtsbote_build_info): the Git commit, "-dirty" with uncommitted changes.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

build:
	$(GO) build -trimpath -ldflags "-X github.com/amtsbote/amtsbote/internal/buildstamp.version=$(VERSION)" -o $(BIN) ./cmd/amtsbote

# The gateway on its embedded defaults: HTTP 127.0.0.1:8080, data under ./data.
run: build
	./$(BIN) serve

# Gateway + demo Fachverfahren in one process, submits the Amt24 example, exits 0.
demo: build
	./$(BIN) demo

# What CI runs: vet, all tests with the race detector (including the end-to-end
# tests on the built binary and the interop tests with xmlsec1, xml-crypto and
# standardwebhooks), the checks of deploy/, then a short run of every fuzz target.
test: tools vet unit allocs deploy-check bench-short fuzz-short

vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags xmlsec ./bench/xmlsec/
	$(GO) vet -tags measure ./e2e/

# One test binary more than CPUs (go's default is one per CPU): the end-to-end and
# cluster tests wait for processes, elections and timers much of the time, and
# with two binaries at once the 2-core CI machine was 65 % busy in this step;
# with three, 90 %, and the step took 410 s instead of 630 s (2026-12-04).
TESTP := $(shell echo $$(( $$(nproc) + 1 )))

# The longest test packages first: go test starts packages in the order named,
# and in ./...'s alphabetical order store/jsstore (4–5 minutes) started when e2e
# and gateway were done and ran alone for the step's last three minutes. Named
# first, the three run side by side from the start and the short ones fill the
# slots after them: the test runs took 594 s against 679 s (2026-12-07, the
# 2-core machine, `go test -json` start and end times; ./... names them again,
# and go test runs each once).
UNIT_FIRST := ./e2e/ ./gateway/ ./store/jsstore/ ./broker/ ./mailbox/ ./store/ ./api/

unit:
	$(GO) test -race -count=1 -p $(TESTP) -timeout 15m $(UNIT_FIRST) $(PKGS)

# The tests that count allocations exactly, without the race detector: under -race
# sync.Pool drops a random quarter of what is put back, and a count varied by one
# from run to run (`unit` skips them).
ALLOC_TESTS := '^TestReadsThatWriteNothingDecodeAsUnmarshal$$'

allocs:
	$(GO) test -count=1 -run $(ALLOC_TESTS) ./store/

# deploy/: the alerting rules checked and unit-tested with promtool, the systemd unit
# verified and its sandbox scored with systemd-analyze.
deploy-check: build $(PROMTOOL)
	$(PROMTOOL) check rules deploy/prometheus/amtsbote-alerts.yml
	cd deploy/prometheus && $(PROMTOOL) test rules amtsbote-alerts.test.yml amtsbote-alerts.days.test.yml
	./scripts/check-systemd.sh

# 10 s for the package parser and verifier, 3 s for the other parsers (make test):
# a smoke run that every target still fuzzes (their seeds run in `unit`); the
# search for new inputs is `make fuzz`'s. With 30 s and 10 s the fuzz step alone
# took 551 of make test's 1500 s on the 2-core machine (2026-12-04); with 15 s and
# 5 s 343 of 1258 s (2026-12-07), over the 20 minutes make test may take there,
# of which about 4 s a target are its build and baseline, whatever the time.
fuzz-short:
	./scripts/fuzz.sh $(FUZZTIME) $(FUZZOTHER)

# The long run: FUZZLONG per target (default 5 minutes; 29 targets, about 2 h 30 min in all).
fuzz:
	./scripts/fuzz.sh $(FUZZLONG) $(FUZZLONG)

# Benchmarks: Go benchmarks (with baselines measured in the same run) and the
# loopback load test of the whole gateway.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./signing/... ./routing/... ./paket/... ./adapters/webhook/...
	$(GO) test -tags xmlsec -run TestCompare -v -count 3 ./bench/xmlsec/
	./$(BIN) bench -n 5000 -c 16
	./$(BIN) bench -open

# The short version inside `make test`: our verifier beside libxmlsec1 once (the
# whole-gateway load test runs as loadtest.TestShortRun in `unit`).
bench-short:
	$(GO) test -tags xmlsec -run TestCompare -count 1 ./bench/xmlsec/

# The kill storm on the real binary (built without -race): 50 SIGKILLs at random
# moments, also during recovery, an office failing 10 % and sometimes hanging,
# 20,000 submissions; prints acknowledged, delivered, lost, duplicates and recovery
# times (a 5-kill version runs in make test).
# The bounded-memory promise alone, verbose: a 2 GiB attachment (or
# E2E_BIGFILE_BYTES) through the built binary, peak RSS printed (also part of
# `make test`: about 25 s here); then the same in cluster mode (store in
# JetStream on a nats-server, E2E_BIGFILE_JS_BYTES, 2 GiB here, about 2 min).
# Needs 5 GiB free under $TMPDIR.
bigfile:
	E2E_RACE=0 E2E_BIGFILE_JS_BYTES=$${E2E_BIGFILE_JS_BYTES:-2147483648} $(GO) test -tags measure -count=1 -timeout 30m -run '^TestBigAttachmentBoundedMemory(JetStream)?$$' -v ./e2e/ | grep -E 'bigfile:|^(---|ok|FAIL|PASS)'

soak:
	E2E_RACE=0 SOAK_KILLS=50 SOAK_N=20000 $(GO) test -count=1 -timeout 120m -run '^TestSoak$$' -v ./e2e/ | grep -E 'soak:|^(---|ok|FAIL|PASS)'

# Load for a long time (closed loop).
bench-soak: build
	./$(BIN) bench -n 50000 -c 32

# Bytes and latency on a store with a history: bbolt rewrites every level of a
# changed tree on each commit, so an empty store flatters (docs/performance.md,
# "Bytes from the disk"). 100,000 submissions written by internal/scalegen (about a
# minute), then the open loop at 200/s on that folder, which is removed after.
HISTORY_DIR ?= /tmp/amtsbote-bench-history
bench-history: build
	rm -rf $(HISTORY_DIR)
	$(GO) run ./internal/scalegen -data $(HISTORY_DIR) -n 100000 -offices 50 -big 20000 -waiting 0
	./$(BIN) bench -open -rates 200 -step 30s -data $(HISTORY_DIR)
	rm -rf $(HISTORY_DIR)

# The long cluster run: three nats-server and three amtsbote processes, 2,000
# submissions with kills (the short version runs in make test), and the store's own
# two-minute kill soak.
# One gateway on its defaults vs three gateways on three NATS nodes (R3), the same
# load, and the take-over time of a dead gateway's in-flight delivery (a measurement;
# the figures go to docs/performance.md).
cluster-measure:
	E2E_RACE=0 $(GO) test -tags measure -count=1 -timeout 30m -run TestMeasureClusterVsSingle -v ./e2e/ | grep -E 'MEASURE|^(---|ok|FAIL)'

cluster-soak:
	CLUSTER_SOAK=2000 $(GO) test -count=1 -timeout 60m -run TestClusterKillsLoseNothing -v ./e2e/
	SOAK_DURATION=2m $(GO) test -tags soak -count=1 -timeout 30m -run TestClusterSoak -v ./store/jsstore/

# Static checks beside make test (.ci/run runs both): gofmt, staticcheck, nilness,
# govulncheck and the SBOM. Kept out of make test for its 20-minute budget (about
# 30 s on 2 cores, 1.5 minutes when the three tools are built the first time).
lint: vet staticcheck nilness vulncheck sbom
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

staticcheck: $(STATICCHECK)
	$(STATICCHECK) $(PKGS)

# x/tools' nil-flow analysis (gopls runs it; go vet does not): a nil dereference
# or a comparison with nil that the control flow already decides.
nilness: $(NILNESS)
	$(NILNESS) $(PKGS)

# govulncheck against the Go vulnerability database as of a pinned day: the OSV
# files of golang.org/x/vulndb at VULNDB_VERSION, from the module proxy, so every
# run answers alike and needs no address beyond the proxy (raise the pin to learn
# of newer vulnerabilities; docs/operations.md, "Vulnerabilities"). It fails when
# the code reaches a known vulnerability (of the standard library too: Go 1.26.8
# reached thirteen). First the database must know Go 1.26.8 as vulnerable, so an
# empty or unread database fails instead of passing.
vulncheck: $(GOVULNCHECK)
	@db=$$(cd $$(mktemp -d) && GOFLAGS= GOWORK=off $(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	test -d "$$db/data/osv" || { echo "vulncheck: no OSV files from golang.org/x/vulndb@$(VULNDB_VERSION)"; exit 1; }; \
	known=$$($(GOVULNCHECK) -db "file://$$db/data/osv" -mode query -format json stdlib@v1.26.8 | grep -c '"id": "GO-'); \
	if [ "$$known" -lt 10 ]; then echo "vulncheck: the database names $$known vulnerabilities of go1.26.8, want at least 10: not read?"; exit 1; fi; \
	echo "vulncheck: golang.org/x/vulndb@$(VULNDB_VERSION) ($$known entries for go1.26.8), $$($(GO) env GOVERSION)"; \
	$(GOVULNCHECK) -db "file://$$db/data/osv" $(PKGS)

# The software bill of materials of the built binary (internal/sbom): CycloneDX
# 1.6 JSON beside it (bin/amtsbote.cdx.json), with every linked module's version,
# go.sum hash and licence, the standard library's version, the binary's SHA-512;
# validated by CycloneDX's own library (tools/node), which must first refuse a
# planted invalid one. In make lint.
sbom: build tools/node/node_modules/.package-lock.json
	@! node tools/node/cdx-validate.mjs internal/sbom/testdata/invalid.cdx.json >/dev/null 2>&1 || { echo "sbom: the validator passed an SBOM with a licence id SPDX does not know"; exit 1; }
	$(GO) run ./scripts/sbom -bin $(BIN) -out $(BIN).cdx.json -version $(VERSION)
	node tools/node/cdx-validate.mjs $(BIN).cdx.json

# $(call go-install,[flags] package@version,name): builds a tool from the module
# proxy into $@ (tools/bin, versioned name), outside this module so go.mod stays as it is.
go-install = @mkdir -p $(CURDIR)/tools/bin; cd $$(mktemp -d) && GOBIN=$$(mktemp -d) GOFLAGS= GOWORK=off sh -c '$(GO) install $(1) && mv "$$GOBIN/$(2)" $@'

$(STATICCHECK):
	$(call go-install,honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION),staticcheck)

$(NILNESS):
	$(call go-install,golang.org/x/tools/go/analysis/passes/nilness/cmd/nilness@$(NILNESS_VERSION),nilness)

$(GOVULNCHECK):
	$(call go-install,golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION),govulncheck)

# npm verifiers used by the interop tests (xml-crypto, standardwebhooks), and mailpit.
tools: tools/node/node_modules/.package-lock.json $(MAILPIT)

$(MAILPIT):
	$(call go-install,github.com/axllent/mailpit@$(MAILPIT_VERSION),mailpit)

$(CURDIR)/tools/bin/promtool-$(PROMTOOL_VERSION):
	$(call go-install,-tags remove_all_sd github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION),promtool)

tools/node/node_modules/.package-lock.json: tools/node/package.json tools/node/package-lock.json
	cd tools/node && npm ci --no-audit --no-fund
	@touch $@

clean:
	rm -rf bin
