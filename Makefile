# crisp — see README.md. Every target installs what it needs (hack/deps.sh).
SHELL   := /bin/bash
GO      ?= go
BIN     := $(CURDIR)/_output/bin
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
# libcontainer needs cgo; seccomp needs libseccomp-dev, isal ISA-L's header
# from libisal-dev (both installed by hack/deps.sh; libisal2 is loaded at run
# time if present, image/unpack/isal.go).
TAGS    := seccomp isal
# -s -w: runc re-executes (and seals a copy of) these binaries on every
# container start and exec; stack traces keep working without the tables.
LDFLAGS := -s -w -X main.version=$(VERSION)
export CGO_ENABLED := 1

.PHONY: all build build-failpoint soak deps deps-run run test vm-test vm-test-ci unit integration crictl-e2e conformance e2e-kubelet images registry-start registry-stop lint clean bench install uninstall install-test

all: build

deps:
	hack/deps.sh

# crisp-monitor is the lean per-container monitor; crisp finds it next to itself.
build:
	$(GO) build -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN)/crisp ./cmd/crisp
	$(GO) build -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN)/crisp-monitor ./cmd/crisp-monitor

# crisp and its monitor with failpoints compiled in (internal/failpoint), for
# the fault-injection suite (test/failpoint_test.go); never installed.
FAILPOINT_BIN := $(BIN)/failpoint
build-failpoint:
	$(GO) build -tags '$(TAGS) failpoint' -ldflags '$(LDFLAGS)' -o $(FAILPOINT_BIN)/crisp ./cmd/crisp
	$(GO) build -tags '$(TAGS) failpoint' -ldflags '$(LDFLAGS)' -o $(FAILPOINT_BIN)/crisp-monitor ./cmd/crisp-monitor

# Installs crisp, crisp-monitor, the systemd unit, a commented default
# /etc/crisp/crisp.toml, /etc/crictl.yaml and the default CNI network, the
# configurations only where none exists; uninstall removes what install wrote
# and the operator did not change since (hack/install.sh, README "Installing").
PREFIX     ?= /usr/local
UNITDIR    ?= /etc/systemd/system
SYSCONFDIR ?= /etc
install: build
	DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' UNITDIR='$(UNITDIR)' SYSCONFDIR='$(SYSCONFDIR)' BIN='$(BIN)' hack/install.sh install

uninstall:
	DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' UNITDIR='$(UNITDIR)' SYSCONFDIR='$(SYSCONFDIR)' hack/install.sh uninstall

# install + uninstall into DESTDIR trees and onto this machine (a few seconds).
install-test: build
	hack/install-test.sh

# Run crisp in the foreground with the default configuration (/etc/crisp/crisp.toml
# if present), a default CNI network when none is configured, and pod traffic
# fenced to the pod subnet. Installs and builds only what that needs (no test
# tools; `make deps` builds crictl and the rest).
run: deps-run build
	hack/run.sh $(BIN)/crisp

deps-run:
	hack/deps.sh run

# Everything CI runs: lint, install/uninstall, unit tests, integration tests, crictl end to end,
# critest conformance, a real kubelet.
test: deps build lint install-test unit images integration crictl-e2e conformance e2e-kubelet
	@echo "== make test: all passed; critest v1.37.0 totals (JUnit in _output/critest-*):"
	@for mode in websocket parallel serial; do \
		$(BIN)/junit-summary -prefix "critest-$$mode" _output/critest-$$mode/junit.xml; done

# Build outputs never belong in git: any tracked ELF file fails lint.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@out=$$(git ls-files -z | xargs -0 -r sh -c 'for f; do [ -f "$$f" ] && [ "$$(head -c4 "$$f" | od -An -c | tr -d " ")" = '"'"'177ELF'"'"' ] && echo "$$f"; done; true' sh); \
		if [ -n "$$out" ]; then echo "executables are committed (remove them, add them to .gitignore):"; echo "$$out"; exit 1; fi
	$(GO) vet -tags '$(TAGS)' ./...
	$(GO) vet -tags '$(TAGS) integration' ./test/...

unit:
	$(GO) test -race -tags '$(TAGS)' ./...

images:
	hack/images.sh

integration: build build-failpoint images
	CRISP_BINARY=$(BIN)/crisp CRISP_FAILPOINT_BINARY=$(FAILPOINT_BIN)/crisp $(GO) test -tags '$(TAGS) integration' -count=1 -timeout 30m ./test/...

# TestSoak with 1,000 pod+container cycles (make test runs 50): fds,
# goroutines, threads, mounts, cgroups, IPs and files before and after.
SOAK_CYCLES ?= 1000
soak: build images
	CRISP_BINARY=$(BIN)/crisp CRISP_SOAK_CYCLES=$(SOAK_CYCLES) $(GO) test -tags '$(TAGS) integration' -count=1 -timeout 3h -v -run '^TestSoak$$' ./test/

# pull, runp, create, start, ps, logs, exec, stats, port-forward, stop, rm,
# rmp, rmi with crictl, each step's effect checked.
crictl-e2e: deps build images
	CRISP_BINARY=$(BIN)/crisp hack/crictl-e2e.sh

# The whole critest suite twice: serially, then with two ginkgo workers, each
# against a fresh crisp; JUnit reports in _output/critest-{serial,parallel}.
conformance: build images
	CRISP_BINARY=$(BIN)/crisp CRITEST_REPORT_DIR=$(CURDIR)/_output/critest-serial hack/conformance.sh
	CRISP_BINARY=$(BIN)/crisp CRITEST_REPORT_DIR=$(CURDIR)/_output/critest-parallel CRITEST_PARALLEL=2 hack/conformance.sh
	# Streaming once more with client-go's websocket clients (kubectl's default).
	CRISP_BINARY=$(BIN)/crisp CRITEST_REPORT_DIR=$(CURDIR)/_output/critest-websocket CRITEST_FOCUS='Streaming' \
		CRITEST_ARGS='-websocket-exec -websocket-attach -websocket-portforward' hack/conformance.sh

# A standalone kubelet (built once into _output/bin/kubelet, ~15 min cold) runs
# static pods on crisp; logs in _output/e2e-kubelet.
e2e-kubelet: deps build images
	hack/e2e-kubelet.sh

# crisp against containerd (built once into _output/bench/bin), interleaved;
# not part of test. README "Benchmarks"; extra flags in BENCH_ARGS.
bench: deps build images
	hack/bench/run.sh

# The suites on cgroup v2 with systemd as PID 1, in one QEMU guest (hack/vm/run.sh;
# README "VM test lane"): each suite once, the integration tests and crictl-e2e
# with the cgroupfs driver, smoke, critest and kubelet with the systemd driver,
# crisp as a systemd service through restarts and crashes.
# VM_SUITES, VM_CGROUP_DRIVER, VM_SCRIPT, ... pass through.
vm-test:
	hack/vm/run.sh

# What CI runs after `make test` (.ci/run): in one guest, the CI subset with the
# cgroupfs driver (smoke, crictl-e2e, the cgroup integration tests), then crisp
# as a systemd service with the systemd driver through restarts and crashes.
vm-test-ci:
	VM_SUITES=ci hack/vm/run.sh

registry-start:
	hack/registry.sh start

registry-stop:
	hack/registry.sh stop

clean:
	rm -rf _output
