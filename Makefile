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
BENCH_COUNT ?= 5
bench: redis-server
	$(GO) test -run '^$$' -bench 'Serial|Parallel|SlowNode|HungNode|Contended|KeepAlive10k' -benchmem -count $(BENCH_COUNT) -timeout 60m ./redlock/ ./pool/goredis/ | tee bench.out
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
	rm -f bench.out
