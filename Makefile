# fishgate: the two set-up commands are `make demo` and `make test`.
GO        ?= go
FUZZSCALE ?= 1
BENCHTIME ?= 2s

.PHONY: demo test test-loaded vet unit iamtcheck bmclibcheck fuzz bench chaos chaos-smoke build clean

demo:
	$(GO) run ./cmd/fishgate demo

test: vet unit iamtcheck bmclibcheck fuzz

# go.mod files tidy first: the tool modules replace fishgate with this
# tree, so a dependency added here changes what their go.mod must say.
vet:
	$(GO) mod tidy -diff
	cd tools/iamtcheck && $(GO) mod tidy -diff
	cd tools/bmclibcheck && $(GO) mod tidy -diff
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 15m ./...

# The simulator's AMT front driven by iamt (bmclib's AMT client): a module
# of its own, so that iamt's old dependencies stay out of go.mod.
iamtcheck:
	cd tools/iamtcheck && $(GO) vet ./... && $(GO) test -race -count=1 ./...

# bmclib v2 (rufio's library) against a node's own address, no system
# name: a module of its own, so that bmclib's dependencies (an older
# gofish) stay out of go.mod. It runs the fishgate command it builds.
bmclibcheck:
	cd tools/bmclibcheck && $(GO) vet ./... && $(GO) test -race -count=1 ./...

# Short, bounded fuzzing (one target per invocation): Redfish request
# decoding, and the UDP input of the IPMI fronts (simulator and gateway).
# Budgets are counts of executions (about 10-20 s each on 2 cores), not
# durations: with a duration, go1.26's fuzz coordinator can fail a clean
# run with "context deadline exceeded" as the time runs out (golang/go
# issue 75804, fixed in go1.27); a count has no deadline to race.
# FUZZSCALE multiplies them (make fuzz FUZZSCALE=10 for a longer run).
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzRequestBodies$$' -fuzztime=$$((60000 * $(FUZZSCALE)))x -fuzzminimizetime=5s ./fronts/redfish
	$(GO) test -run='^$$' -fuzz='^FuzzIPMIPacket$$' -fuzztime=$$((200000 * $(FUZZSCALE)))x -fuzzminimizetime=5s ./wire/ipmibmc
	$(GO) test -run='^$$' -fuzz='^FuzzSharedDispatch$$' -fuzztime=$$((150000 * $(FUZZSCALE)))x -fuzzminimizetime=5s ./wire/ipmibmc
	$(GO) test -run='^$$' -fuzz='^FuzzResolve$$' -fuzztime=$$((100000 * $(FUZZSCALE)))x -fuzzminimizetime=5s ./fronts/redfish/proxy
	$(GO) test -run='^$$' -fuzz='^FuzzNodeHost$$' -fuzztime=$$((100000 * $(FUZZSCALE)))x -fuzzminimizetime=5s ./app/config

bench:
	$(GO) run ./cmd/fgbench -duration 10s -rounds 5
	$(GO) run ./cmd/fgbench admission -nodes 1000 -duration 10s -rounds 5
	$(GO) run ./cmd/fgbench fleet -nodes 10000 -rounds 3
	# RSS and sockets of a gateway with 10,000 node addresses against one without (issue 16)
	$(GO) run ./cmd/fgbench addresses -nodes 10000
	$(GO) test -run='^$$' -bench=. -benchtime=$(BENCHTIME) -count=5 ./fronts/redfish ./simulator/... ./backends/...
	cd tools/iamtcheck && $(GO) test -run='^$$' -bench=. -benchtime=$(BENCHTIME) -count=5 ./...
	$(GO) test -run='^$$' -bench='^BenchmarkAdmission$$' -benchtime=$(BENCHTIME) -count=5 ./serializer
	# IPMI at 10,000 node addresses: one shared UDP socket against a socket per node (heap, fds, goroutines)
	$(GO) test -run='^$$' -bench='10000$$' -benchtime=1x -count=1 ./wire/ipmibmc
	# the operator page in chromium: first paint of the fleet with 10,000 simulated BMCs
	$(GO) test -run='^$$' -bench='^BenchmarkOperatorPageFirstPaint$$' -benchtime=3x -count=1 -timeout 15m ./e2e

# The suite under load: `make test` LOADED_RUNS times in a row (default 5)
# with two CPU-burning processes alongside, stopping at the first failure;
# prints each run's wall time. Tests must not depend on the machine's speed.
LOADED_RUNS ?= 5
test-loaded:
	@sh -c 'while :; do :; done' & b1=$$!; sh -c 'while :; do :; done' & b2=$$!; \
	trap "kill $$b1 $$b2" EXIT; \
	for i in $$(seq 1 $(LOADED_RUNS)); do \
		s=$$(date +%s); $(MAKE) --no-print-directory test || { echo "test-loaded: run $$i failed"; exit 1; }; \
		echo "test-loaded: run $$i passed in $$(( $$(date +%s) - s ))s"; \
	done

# A short chaos run for CI (under 3 minutes): real redis-server with AOF,
# 3 replicas, SIGKILLs, a Redis restart, a few hundred requests; exits
# non-zero on any lost task, overlap or unconverged node.
chaos-smoke:
	$(GO) run ./cmd/fgchaos -nodes 30 -requests 400 -replicas 3 -kill-every 1s -timeout 3m -settle 60s

# Three replicas, real Redis with AOF, faulty simulated BMCs, SIGKILLs and a
# Redis failure; checks the invariants of docs/architecture.md#invariants and
# prints one summary line. REDIS=standalone (a restart of the one server),
# sentinel or cluster (the master SIGKILLed, a replica promoted).
REDIS ?= standalone
chaos:
	$(GO) run ./cmd/fgchaos -nodes 200 -requests 5000 -replicas 3 -redis $(REDIS)

# `make build` writes bin/fishgate (and the other commands) stamped with
# the version (git describe), the commit and the build date (UTC), which
# `fishgate version` prints. BIN and PKGS let a test build one command
# elsewhere with the same stamping.
BIN     ?= bin
PKGS    ?= ./cmd/...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ $(PKGS)

clean:
	rm -rf bin
