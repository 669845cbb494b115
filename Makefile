# quorumlock — the two commands a newcomer runs are `make demo` and `make test`.
GO      ?= go
# Image the integration suite runs; `make image` builds it from the host's redis-server.
QUORUMLOCK_REDIS_IMAGE ?= quorumlock/redis:local
export QUORUMLOCK_REDIS_IMAGE
GOTEST_TIMEOUT ?= 30m
STATICCHECK_VERSION ?= latest
BENCHSTAT_VERSION ?= latest

.PHONY: all test unit demo redis-server image integration bench bench-contention lint fuzz fuzz-ci fips clean

all: test

# Installs redis-server from Debian when it is missing and we are root.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else \
	    echo "NOTE: redis-server is not installed; real-Redis tests will be skipped (apt-get install redis-server)"; \
	  fi; }

# Builds the local Redis image for the integration suite when Docker answers.
image:
	@if docker info >/dev/null 2>&1; then \
	  bash testdata/redis-image/build.sh "$(QUORUMLOCK_REDIS_IMAGE)"; \
	else \
	  echo "NOTE: Docker is not reachable; not building $(QUORUMLOCK_REDIS_IMAGE)"; \
	fi

demo: redis-server
	$(GO) run ./cmd/redlock demo

test: redis-server image
	$(GO) vet ./...
	$(GO) test -race -timeout $(GOTEST_TIMEOUT) ./...

unit:
	$(GO) test -race -short ./...

integration: redis-server image
	$(GO) test -race -count=1 -timeout $(GOTEST_TIMEOUT) -v ./integration/...

# Every lock benchmark next to its floor, medians of 5 runs, as one table.
# The runs are passes over the whole list, not -count 5 of each benchmark in
# turn: a shared machine's load drifts over minutes, and a lock row and its
# floor row measured minutes apart would compare the drift, not the code.
BENCH_COUNT ?= 5
BENCH ?= Serial|Parallel|SlowNode|HungNode|Contended|KeepAlive10k
bench: redis-server
	@rm -f bench.out
	@set -e; for pass in $$(seq $(BENCH_COUNT)); do \
	  echo "bench pass $$pass of $(BENCH_COUNT)"; \
	  $(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count 1 -timeout 60m ./redlock/ ./pool/goredis/ > bench.pass || { cat bench.pass; exit 1; }; \
	  cat bench.pass; cat bench.pass >> bench.out; \
	done; rm -f bench.pass
	$(GO) run golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION) bench.out

FUZZTIME ?= 20s
fuzz:
	$(GO) test ./pool -run '^$$' -fuzz '^FuzzParseURL$$' -fuzztime=$(FUZZTIME)
	$(GO) test ./pool -run '^$$' -fuzz '^FuzzParseURLCredentials$$' -fuzztime=$(FUZZTIME)
	$(GO) test ./internal/scripts -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime=$(FUZZTIME)

fuzz-ci:
	$(MAKE) fuzz FUZZTIME=5s

# The library computes no SHA-1 in process, so it runs in FIPS-only mode.
fips: redis-server
	GODEBUG=fips140=only $(GO) test -count=1 ./pool/... ./redlock/...

lint:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

clean:
	rm -f bench.out bench.pass
