# quorumlock — the two commands a newcomer runs are `make demo` and `make test`.
GO      ?= go
# Image the integration suite runs; `make image` builds it from the host's redis-server.
QUORUMLOCK_REDIS_IMAGE ?= quorumlock/redis:local
export QUORUMLOCK_REDIS_IMAGE
GOTEST_TIMEOUT ?= 30m
STATICCHECK_VERSION ?= 2025.1.1

.PHONY: all test unit demo redis-server image integration bench lint fuzz clean

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

bench: redis-server
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./redlock/ | tee bench.out

lint:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

clean:
	rm -f bench.out
