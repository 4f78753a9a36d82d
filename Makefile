# fishgate: the two set-up commands are `make demo` and `make test`.
GO        ?= go
FUZZTIME  ?= 20s
BENCHTIME ?= 2s

.PHONY: demo test vet unit fuzz bench chaos build clean

demo:
	$(GO) run ./cmd/fishgate demo

test: vet unit fuzz

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 15m ./...

# Short, bounded fuzzing (one target per invocation): Redfish request
# decoding, and the UDP input of the IPMI fronts (simulator and gateway).
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzRequestBodies$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./redfish
	$(GO) test -run='^$$' -fuzz='^FuzzIPMIPacket$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./wire/ipmibmc
	$(GO) test -run='^$$' -fuzz='^FuzzResolve$$' -fuzztime=10s -fuzzminimizetime=5s ./proxy

bench:
	$(GO) run ./cmd/fgbench -duration 10s -rounds 5
	$(GO) run ./cmd/fgbench admission -nodes 1000 -duration 10s -rounds 5
	$(GO) test -run='^$$' -bench=. -benchtime=$(BENCHTIME) -count=5 ./redfish ./simulator/... ./backends/...
	$(GO) test -run='^$$' -bench='^BenchmarkAdmission$$' -benchtime=$(BENCHTIME) -count=5 ./serializer

# Three replicas, real Redis with AOF, faulty simulated BMCs, SIGKILLs and a
# Redis restart; checks the invariants of docs/architecture.md#invariants and
# prints one summary line.
chaos:
	$(GO) run ./cmd/fgchaos -nodes 200 -requests 5000 -replicas 3

build:
	$(GO) build -o bin/ ./cmd/...

clean:
	rm -rf bin
