#!/usr/bin/env bash
# hack/vm/run.sh: the VM test lane (`make vm-test`). crisp's suites on cgroup
# v2 with systemd as PID 1, in a QEMU guest on this machine.
#
# Run it from the root of a crisp checkout: that checkout's binaries
# (_output/bin) and scripts are what the guest runs, so another worktree can
# run this script by path (`/path/to/hack/vm/run.sh`) against its own build.
#
#   1. builds on the host: crisp and crisp-monitor (make build), crictl and
#      critest (hack/deps.sh), the integration tests as a binary
#      (go test -c -tags 'seccomp integration'), kubelet (hack/kubelet/build.sh)
#      — each only when a selected suite needs it;
#   2. fills the loopback registry on 127.0.0.1:5000 (hack/images.sh); the
#      guest reaches it as 10.0.2.2:5000 through QEMU's user-mode network and
#      forwards its own 127.0.0.1:5000 there, so the suites run unchanged;
#   3. builds or reuses the guest (hack/vm/image.sh: Debian 12 kernel 6.1,
#      debootstrap rootfs with systemd, cached under $VM_CACHE);
#   4. boots it under TCG with the checkout shared read-write over 9p at the
#      same path, runs hack/vm/guest.sh there (the suites), streams the
#      console, and exits with the guest's status.
#
# Exit status: 0 all selected suites passed; 1 a suite failed; 124 the guest
# did not finish within VM_TIMEOUT; 125 the guest died without reporting.
# QEMU is always stopped (by PID) when this script exits.
#
# Environment:
#   VM_SUITES         suites to run, in order, space or comma separated, from
#                     smoke integration crictl-e2e critest e2e-kubelet
#                     systemd-restart, each at most once, each NAME or
#                     NAME:DRIVER (cgroupfs or systemd: that suite's
#                     CRISP_CGROUP_DRIVER). Default: every suite once, the
#                     integration tests and crictl-e2e with cgroupfs, smoke,
#                     critest and e2e-kubelet with systemd, then
#                     systemd-restart (crisp as a systemd service; always the
#                     systemd driver). `ci` = the CI subset (README).
#   VM_CGROUP_DRIVER  cgroupfs or systemd: the driver of every suite named
#                     without one (default cgroupfs); set without VM_SUITES,
#                     every suite runs with it
#   VM_SCRIPT         a script (path relative to the checkout, or absolute
#                     inside it) run in the guest after the suites, or
#                     instead of them with VM_SUITES=none; its exit status
#                     counts like a suite's
#   VM_TEST_RUN       -test.run regex for the integration tests (default all)
#   VM_TEST_COUNT     -test.count for the integration tests (default 1):
#                     repeat chosen tests to chase an intermittent failure
#   VM_TEST_SKIP      -test.skip regex (default 'Latency$': the latency
#                     tests, which measure the host's speed, not
#                     emulated CPUs; empty to run them)
#   VM_CRITEST_FOCUS  ginkgo focus for critest (default the whole suite)
#   VM_CRITEST_SKIP   extra ginkgo skip regex for critest
#   VM_SOAK_CYCLES    TestSoak's cycles in the guest (default 10; the host's
#                     make test runs 50)
#   VM_TIMEOUT        seconds the whole guest run may take (default 9000 for
#                     the full set, 3600 for a chosen one)
#   VM_TIMEOUT_SCALE  factor for the suites' own time limits and kubelet's
#                     probe periods and timeouts (default 8: with 4, on a
#                     machine busy with other work, exec probes timed out)
#   VM_CPUS, VM_MEM   guest vCPUs (2) and MiB of memory (4096)
#   VM_CACHE          guest image cache (default <checkout>/_output/vm); may
#                     be shared by checkouts, e.g. /var/cache/crisp-vm
#   VM_NO_BUILD=1     use _output/bin as it is (another build step made it)
#   VM_NO_IMAGES=1    do not run hack/images.sh (the registry is filled)
# Output: _output/vm-runs/<time>/ (console.log, one log per suite, summary).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(pwd)
grep -q '^module github.com/crisp-runtime/crisp$' "$ROOT/go.mod" 2>/dev/null ||
	{ echo "vm: run this from the root of a crisp checkout (cwd: $ROOT)" >&2; exit 2; }
BIN=$ROOT/_output/bin
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	export PATH=/usr/local/go/bin:$PATH
fi

ALL_SUITES="smoke integration crictl-e2e critest e2e-kubelet systemd-restart"
# The full set, each suite once (README "The VM test lane"): the integration
# tests with cgroupfs (every crisp they start; the systemd driver's own
# cases are in smoke, systemd-restart and the integration tests' scope
# checks), critest and kubelet with systemd as a node runs them (kubelet's
# cgroupDriver: systemd and its default failCgroupV1), quick ones first.
FULL_SUITES="smoke:systemd crictl-e2e:cgroupfs e2e-kubelet:systemd critest:systemd integration:cgroupfs systemd-restart"
# CI's subset (README "The VM test lane"; about 25 minutes on a busy
# machine): the quick suites and the integration tests that exercise
# cgroups (limits, OOM, updates, stats and metrics, pod cgroups, restarts,
# user namespaces). The full integration suite (about an hour under TCG),
# critest (about 25 min) and kubelet run in `make vm-test`.
CI_SUITES="smoke crictl-e2e integration systemd-restart"
CI_TEST_RUN='^(TestPodsAfterLimitedContainer|TestExecRunByMonitor|TestContainerPidsLimit|TestContainerResourcesAndSecurity|TestContainerLifecycle|TestContainerRestartSafety|TestContainerEvents|TestPodSandboxMetrics|TestSandboxLifecycle|TestSandboxSharedPIDReaper|TestSandboxesSurviveRestartAndKill9|TestUserNamespacePod|TestVersionAndRuntimeConfig|TestHugepageLimit|TestShmSize|TestShmCannotEscapeMemoryLimit|TestDefaultUlimits)$'
if [[ -n ${VM_SUITES:-} ]]; then
	SUITES=$VM_SUITES
elif [[ -n ${VM_CGROUP_DRIVER:-} ]]; then
	SUITES=$ALL_SUITES
else
	SUITES=$FULL_SUITES
fi
SUITES=${SUITES//,/ }
if [[ $SUITES == ci ]]; then
	SUITES=$CI_SUITES
	VM_TEST_RUN=${VM_TEST_RUN:-$CI_TEST_RUN}
fi
[[ $SUITES == none ]] && SUITES=
names=" "
for s in $SUITES; do
	n=${s%%:*}
	[[ " $ALL_SUITES " == *" $n "* ]] || { echo "vm: unknown suite $n (known: $ALL_SUITES)" >&2; exit 2; }
	[[ $names != *" $n "* ]] || { echo "vm: suite $n named twice (its log would be overwritten)" >&2; exit 2; }
	names+="$n "
	[[ $s != *:* || ${s#*:} == cgroupfs || ${s#*:} == systemd ]] || { echo "vm: $s: the driver must be cgroupfs or systemd" >&2; exit 2; }
done
DRIVER=${VM_CGROUP_DRIVER:-cgroupfs}
[[ $DRIVER == cgroupfs || $DRIVER == systemd ]] || { echo "vm: VM_CGROUP_DRIVER must be cgroupfs or systemd" >&2; exit 2; }
SCRIPT=${VM_SCRIPT:-}
if [[ -n $SCRIPT ]]; then
	[[ $SCRIPT == /* ]] || SCRIPT=$ROOT/$SCRIPT
	[[ -f $SCRIPT && $SCRIPT == "$ROOT"/* ]] || { echo "vm: VM_SCRIPT must be a file inside $ROOT" >&2; exit 2; }
fi
[[ -n $SUITES || -n $SCRIPT ]] || { echo "vm: nothing to run" >&2; exit 2; }
has() { [[ " $SUITES " == *" $1 "* || " $SUITES " == *" $1:"* ]]; }
# The full set takes about 85-100 minutes under emulation on a quiet
# machine and has taken 2x that on a busy one (README); a chosen subset
# gets an hour.
TIMEOUT=3600
has integration && has critest && TIMEOUT=9000
TIMEOUT=${VM_TIMEOUT:-$TIMEOUT}
t0=$SECONDS
phase() { echo "vm: [$((SECONDS - t0))s] $*"; }

# 1. Host builds.
if [[ -z ${VM_NO_BUILD:-} ]]; then
	phase "building on the host"
	hack/deps.sh
	make --no-print-directory build
	if has integration; then
		make --no-print-directory build-failpoint
		go test -c -tags 'seccomp integration' -o "$BIN/integration.test" ./test/
	fi
	if has e2e-kubelet; then
		hack/kubelet/build.sh
	fi
fi
for b in crisp crisp-monitor crictl; do
	[[ -x $BIN/$b ]] || { echo "vm: $BIN/$b missing" >&2; exit 2; }
done

# 2. Test images in the loopback registry.
if [[ -z ${VM_NO_IMAGES:-} ]]; then
	phase "test images"
	hack/images.sh
fi

# 3. The guest.
CACHE=$("$HERE/image.sh")

# 4. Boot.
RUN=$ROOT/_output/vm-runs/$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN"
{
	printf 'VM_SUITES=%q\n' "$SUITES"
	printf 'VM_CGROUP_DRIVER=%q\n' "$DRIVER"
	printf 'VM_SCRIPT=%q\n' "$SCRIPT"
	printf 'VM_TEST_RUN=%q\n' "${VM_TEST_RUN:-}"
	printf 'VM_TEST_COUNT=%q\n' "${VM_TEST_COUNT:-1}"
	printf 'VM_TEST_SKIP=%q\n' "${VM_TEST_SKIP-Latency\$}"
	printf 'VM_CRITEST_FOCUS=%q\n' "${VM_CRITEST_FOCUS:-}"
	printf 'VM_CRITEST_SKIP=%q\n' "${VM_CRITEST_SKIP:-}"
	printf 'VM_TIMEOUT_SCALE=%q\n' "${VM_TIMEOUT_SCALE:-8}"
	printf 'VM_SOAK_CYCLES=%q\n' "${VM_SOAK_CYCLES:-10}"
	printf 'VM_GUEST_DEADLINE=%q\n' "$TIMEOUT"
} >"$RUN/env"
CONSOLE=$RUN/console.log
: >"$CONSOLE"
shares=(-virtfs "local,path=$ROOT,mount_tag=repo,security_model=none,id=repo")
GOROOT_HOST=$(go env GOROOT 2>/dev/null || true)
if [[ -n $GOROOT_HOST && -d $GOROOT_HOST ]]; then
	shares+=(-virtfs "local,path=$GOROOT_HOST,mount_tag=go,security_model=none,readonly=on,id=go")
fi
qemu=(qemu-system-x86_64 -accel tcg -cpu max -smp "${VM_CPUS:-2}" -m "${VM_MEM:-4096}"
	-display none -monitor none -serial "file:$CONSOLE" -no-reboot
	-kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.cpio.gz"
	# The image stays as built: the guest's writes go to a throw-away overlay.
	-drive "file=$CACHE/rootfs.img,if=virtio,format=raw,snapshot=on"
	-nic user,model=virtio-net-pci
	"${shares[@]}"
	-append "console=ttyS0 psi=1 quiet loglevel=3 panic=-1 systemd.show_status=0 crispvm.root=$ROOT crispvm.out=$RUN")

QPID=
TPID=
cleanup() {
	local rc=$?
	if [[ -n $QPID ]] && kill -0 "$QPID" 2>/dev/null; then
		kill -TERM "$QPID" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$QPID" 2>/dev/null || break; sleep 0.5; done
		kill -KILL "$QPID" 2>/dev/null || true
		wait "$QPID" 2>/dev/null || true
	fi
	[[ -z $TPID ]] || kill "$TPID" 2>/dev/null || true
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

phase "booting the guest (TCG, ${VM_CPUS:-2} vCPUs; output in ${RUN#"$ROOT"/})"
"${qemu[@]}" </dev/null >"$RUN/qemu.log" 2>&1 &
QPID=$!
# The console, as it comes, without the terminal control sequences.
tail -n +1 -F "$CONSOLE" 2>/dev/null | sed -u -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1bc//g' -e 's/\r//g' &
TPID=$!
deadline=$((SECONDS + TIMEOUT))
while kill -0 "$QPID" 2>/dev/null; do
	if ((SECONDS >= deadline)); then
		phase "guest still running after ${TIMEOUT}s: stopping it"
		break
	fi
	sleep 2
done
timed_out=0
kill -0 "$QPID" 2>/dev/null && timed_out=1
if ((timed_out)); then
	kill -KILL "$QPID" 2>/dev/null || true
fi
wait "$QPID" 2>/dev/null || true
QPID=
sleep 1
kill "$TPID" 2>/dev/null || true
wait "$TPID" 2>/dev/null || true
TPID=
phase "guest stopped"

rc=$(tr -d '\r' <"$CONSOLE" | sed -n 's/^VMTEST_EXIT=\([0-9]*\).*/\1/p' | tail -1)
if ((timed_out)); then
	echo "vm: FAILED: timeout after ${TIMEOUT}s (VM_TIMEOUT)"
	exit 124
fi
if [[ -z $rc ]]; then
	echo "vm: FAILED: the guest stopped without reporting an exit status (crash?); QEMU said:"
	tail -20 "$RUN/qemu.log"
	exit 125
fi
[[ -f $RUN/summary ]] && cat "$RUN/summary"
echo "vm: guest exit status $rc, wall time $((SECONDS - t0))s, output in ${RUN#"$ROOT"/}"
exit "$rc"
