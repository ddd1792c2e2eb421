# redispool: the library is the root module; examples/, prometheus/ and
# bench/ are modules of their own so their dependencies stay out of the
# library's go.mod. go.work ties them together for development.

GO          ?= go
MODULES     := . examples prometheus otel bench ecosystem
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report its own stop deadline as a failure ("context deadline exceeded",
# no failing input) on a loaded machine, golang/go#75804, fixed in 1.27.
FUZZTIME    ?= 100000x

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-11s %s\n", $$1, $$2}'

.PHONY: run
run: ## Run the example CLI: a short benchmark on an embedded miniredis (no Redis needed)
	$(GO) run ./examples/redispool-cli bench -d 2s

.PHONY: test
test: ## Run every module's tests with the race detector (starts its own redis-server processes)
	@set -e; for m in $(MODULES); do \
		echo "== go test -race $$m"; \
		(cd $$m && $(GO) test -race -count=1 ./...); \
	done

# go vet includes the stdversion check: no standard-library API newer
# than a module's go line, which is how the minimums in the README's
# "Which Go" table are kept true while CI builds with one newer Go.
.PHONY: lint
lint: ## gofmt, go vet and staticcheck on every module; go mod tidy must leave no diff; no binaries in git
	@# A tracked file must be source: no compiled binary (ELF, Mach-O, PE) and nothing over 1 MB.
	@bad=$$(git ls-files | while IFS= read -r f; do \
		[ -f "$$f" ] || continue; \
		[ $$(wc -c < "$$f") -le 1048576 ] || echo "  $$f: over 1 MB"; \
		case $$(head -c 4 "$$f" | od -An -tx1 | tr -d ' \n') in \
		7f454c46|feedface|feedfacf|cefaedfe|cffaedfe|cafebabe|4d5a??00) echo "  $$f: a compiled binary";; \
		esac; \
	done); if [ -n "$$bad" ]; then echo "tracked files that do not belong in git:"; echo "$$bad"; exit 1; fi
	@set -e; out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do \
		echo "== vet and staticcheck $$m"; \
		(cd $$m && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...); \
	done
	@set -e; for m in $(MODULES); do \
		(cd $$m && cp go.mod /tmp/redispool-go.mod && cp go.sum /tmp/redispool-go.sum && GOWORK=off $(GO) mod tidy && \
		 if ! cmp -s go.mod /tmp/redispool-go.mod || ! cmp -s go.sum /tmp/redispool-go.sum; then \
			echo "go mod tidy changes $$m/go.mod or go.sum"; mv /tmp/redispool-go.mod go.mod; mv /tmp/redispool-go.sum go.sum; exit 1; fi); \
	done

.PHONY: bench
bench: ## Benchmark suite (~5 min): redispool vs redigo.Pool, go-redis and raw connections; writes docs/BENCHMARKS.md
	$(MAKE) -C bench bench OUT=../docs/BENCHMARKS.md

.PHONY: bench-quick
bench-quick: ## The benchmark suite in ~40s, report on stdout (run by CI to keep the harness working)
	$(MAKE) -C bench bench-quick

.PHONY: microbench
microbench: ## Borrow and return alone vs redigo.Pool: bench/'s fake-connection benchmark, then the root package's
	$(MAKE) -C bench microbench
	$(GO) test -run '^$$' -bench . -benchmem .

.PHONY: chaos
chaos: ## Fault-injection suite against real redis-server, with a summary table in docs/chaos.md
	REDISPOOL_CHAOS_REPORT=$(CURDIR)/docs/chaos.md $(GO) test -race -count=1 -run 'Fault|Chaos' -v .

.PHONY: soak
soak: ## 60-second mixed workload with random faults (not run in CI)
	REDISPOOL_SOAK=1 REDISPOOL_CHAOS_REPORT=$(CURDIR)/docs/soak.md $(GO) test -race -count=1 -run 'Soak' -timeout 10m -v .

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME executions (default 100000x)
	@set -e; for f in $$($(GO) test -list '^Fuzz' . | grep '^Fuzz'); do \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) .; \
	done

.PHONY: cover
cover: ## Test coverage of the library (coverage.html)
	$(GO) test -count=1 -coverprofile=coverage.out . ./redistest ./redispooltest
	$(GO) tool cover -func=coverage.out | tail -1
	$(GO) tool cover -html=coverage.out -o coverage.html
