# flowcheck: build, test, lint and fuzz. CI (.ci/run) uses these targets.
GO        ?= go
BIN       ?= bin/collector
# A count of executions (Nx), not a duration: a -fuzztime duration races the
# fuzz coordinator's deadline in Go 1.26 and fails a target that found nothing
# with "context deadline exceeded" (golang/go#75804, fixed in Go 1.27).
FUZZTIME  ?= 20000x
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/staticcheck)

.PHONY: all build test lint cross fuzz clean

all: lint test build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/collector

test:
	$(GO) test -race -count=1 ./...

lint:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# Builds every package for the systems other than Linux that the tools
# (decode, replay) and the daemon's portable receive path support.
cross:
	@set -e; for os in darwin freebsd openbsd windows; do \
	  echo "== GOOS=$$os"; GOOS=$$os $(GO) build ./...; \
	done

# Runs every FuzzXxx target of every package for FUZZTIME executions each
# (go test -fuzz accepts one target per run).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$target"; \
	    $(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

clean:
	rm -rf bin
