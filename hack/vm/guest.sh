#!/usr/bin/env bash
# hack/vm/guest.sh: runs inside the VM test lane's guest (started by the
# image's bootstrap with the checkout as cwd, at the host's path). Sets up the
# guest's side (network, the registry forward, modules), then runs the suites
# of $VM_SUITES in order and $VM_SCRIPT, each with its output in
# $CRISP_VM_OUT/<suite>.log and its tail on the console when it fails. A
# suite is NAME or NAME:DRIVER; DRIVER (cgroupfs or systemd, default
# $VM_CGROUP_DRIVER) is exported as CRISP_CGROUP_DRIVER for that suite, so
# one boot can run some suites with each driver.
# Writes $CRISP_VM_OUT/summary (one "suite: N passed, N failed" line each)
# and exits 0 only if every suite passed. Settings come from
# $CRISP_VM_OUT/env, written by hack/vm/run.sh.
set -uo pipefail

ROOT=$(pwd)
BIN=$ROOT/_output/bin
OUT=${CRISP_VM_OUT:?}
# shellcheck disable=SC1091
source "$OUT/env"
export PATH=$BIN:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "vm-guest: [$(up)s] $*"; }

# Network: QEMU's user-mode network (host 10.0.2.2, DNS 10.0.2.3).
ifc=$(ls /sys/class/net | grep -v -e '^lo$' | head -1)
ip link set lo up
ip link set "$ifc" up
ip addr add 10.0.2.15/24 dev "$ifc"
ip route add default via 10.0.2.2
echo 'nameserver 10.0.2.3' >/etc/resolv.conf
# The suites expect the registry on 127.0.0.1:5000, as on the host.
socat TCP-LISTEN:5000,bind=127.0.0.1,fork,reuseaddr TCP:10.0.2.2:5000 &
for m in overlay bridge veth br_netfilter nf_tables nft_compat nft_chain_nat \
	xt_MASQUERADE xt_conntrack xt_comment xt_addrtype xt_mark xt_multiport \
	iptable_nat iptable_filter ip6table_nat ip6table_filter; do
	modprobe "$m" 2>/dev/null
done
sysctl -qw net.ipv4.ip_forward=1
for _ in $(seq 1 50); do
	curl -sf -o /dev/null --max-time 2 http://127.0.0.1:5000/v2/ && break
	sleep 0.2
done
curl -sf -o /dev/null --max-time 5 http://127.0.0.1:5000/v2/ || say "WARNING: the host's registry does not answer on 10.0.2.2:5000"

# The binaries run from the guest's own disk: over 9p every exec, and runc's
# sealed copy of crisp-monitor at every container start and exec, would
# read them through the emulated transport. Same path, so the scripts and
# CRISP_BINARY checks see no difference.
t=$SECONDS
mkdir -p /var/lib/crisp-vm/bin
cp -a "$BIN/." /var/lib/crisp-vm/bin/ && mount --bind /var/lib/crisp-vm/bin "$BIN" ||
	say "WARNING: could not copy $BIN to the guest's disk; running from 9p"
say "binaries copied to the guest's disk in $((SECONDS - t))s ($(du -sh /var/lib/crisp-vm/bin | cut -f1))"

say "kernel $(uname -r) (THP $(sed 's/.*\[\(.*\)\].*/\1/' /sys/kernel/mm/transparent_hugepage/enabled)), $(systemctl --version | head -1), PID 1 $(cat /proc/1/comm)," \
	"/sys/fs/cgroup is $(stat -fc %T /sys/fs/cgroup), controllers: $(cat /sys/fs/cgroup/cgroup.controllers)," \
	"$(nproc) CPUs"

scale=${VM_TIMEOUT_SCALE:-8}
summary=$OUT/summary
: >"$summary"
failed_suites=0
# record SUITE RC SECONDS PASSED FAILED [SKIPPED]: the summary line, which
# names the suite's cgroup driver.
record() {
	local line
	line=$(printf '%-27s %s passed, %s failed' "$1 ($CRISP_CGROUP_DRIVER):" "$4" "$5")
	[[ -z ${6:-} ]] || line+=", $6 skipped"
	line+=" ($3s)"
	((${2} == 0)) || { line+=" FAILED (exit $2)"; failed_suites=$((failed_suites + 1)); }
	echo "vm: $line" | tee -a "$summary"
}
# run_suite NAME CMD...: output to $OUT/NAME.log; the tail on the console if
# it fails.
run_suite() {
	local name=$1 log=$OUT/$1.log start=$SECONDS rc
	shift
	say "== $name"
	"$@" >"$log" 2>&1 </dev/null
	rc=$?
	suite_secs=$((SECONDS - start))
	if ((rc != 0)); then
		say "$name failed (exit $rc); last lines of ${log#"$ROOT"/}:"
		tail -40 "$log" | sed 's/^/    /'
	fi
	return $rc
}

smoke() {
	local rc p f
	run_suite smoke "$ROOT/hack/vm/smoke.sh"
	rc=$?
	p=$(grep -c '^PASS:' "$OUT/smoke.log")
	f=$(grep -c '^FAIL:' "$OUT/smoke.log")
	record smoke $rc $suite_secs "$p" "$f"
}

integration() {
	local rc p f s
	[[ -x $BIN/integration.test ]] || { say "no $BIN/integration.test"; record integration 1 0 0 0; return; }
	local args=(-test.v -test.count="${VM_TEST_COUNT:-1}" -test.timeout "$((30 * scale))m")
	[[ -z $VM_TEST_RUN ]] || args+=(-test.run "$VM_TEST_RUN")
	[[ -z $VM_TEST_SKIP ]] || args+=(-test.skip "$VM_TEST_SKIP")
	# The soak compares the daemon's fds, goroutines, threads, mounts,
	# cgroups, IPs and files before and after its cycles; a leak shows as
	# growth per cycle, so 10 cycles catch what the host's 50 catch in a
	# fifth of the time under emulation (about 35 s instead of 3 min).
	run_suite integration env -C "$ROOT/test" CRISP_BINARY="$BIN/crisp" CRISP_FAILPOINT_BINARY="$BIN/failpoint/crisp" \
		CRISP_TEST_TIMEOUT_SCALE="$scale" CRISP_SOAK_CYCLES="${VM_SOAK_CYCLES:-10}" "$BIN/integration.test" "${args[@]}"
	rc=$?
	# Top-level tests only (subtests are indented).
	p=$(grep -c '^--- PASS' "$OUT/integration.log")
	f=$(grep -c '^--- FAIL' "$OUT/integration.log")
	s=$(grep -c '^--- SKIP' "$OUT/integration.log")
	grep '^--- FAIL' "$OUT/integration.log" | sed 's/^/    /'
	record integration $rc $suite_secs "$p" "$f" "$s"
}

crictl_e2e() {
	local rc p
	run_suite crictl-e2e env CRISP_BINARY="$BIN/crisp" "$ROOT/hack/crictl-e2e.sh"
	rc=$?
	p=$(sed -n 's/^crictl-e2e: \([0-9]*\) checks passed.*/\1/p' "$OUT/crictl-e2e.log" | tail -1)
	record crictl-e2e $rc $suite_secs "${p:-0}" $((rc == 0 ? 0 : 1))
}

critest() {
	local rc line p f s
	local env=(CRISP_BINARY="$BIN/crisp" CRITEST_REPORT_DIR="$OUT/critest" CRITEST_TIMEOUT="$((60 * scale))m")
	[[ -z $VM_CRITEST_FOCUS ]] || env+=(CRITEST_FOCUS="$VM_CRITEST_FOCUS")
	if [[ -n $VM_CRITEST_SKIP ]]; then
		{ cat "$ROOT/test/critest-skips.txt"; echo "$VM_CRITEST_SKIP"; } >"$OUT/critest-skips.txt"
		env+=(CRITEST_SKIP_FILE="$OUT/critest-skips.txt")
	fi
	run_suite critest env "${env[@]}" "$ROOT/hack/conformance.sh"
	rc=$?
	line=$(grep -E '^critest: [0-9]+ passed' "$OUT/critest.log" | tail -1)
	p=$(sed -n 's/^critest: \([0-9]*\) passed.*/\1/p' <<<"$line")
	f=$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<<"$line")
	s=$(sed -n 's/.* \([0-9]*\) skipped.*/\1/p' <<<"$line")
	grep -E '^\s*\[FAIL\]' "$OUT/critest.log" | sort -u | head -30 | sed 's/^/    /'
	record critest $rc $suite_secs "${p:-0}" "${f:-?}" "${s:-0}"
}

e2e_kubelet() {
	local rc line p f
	run_suite e2e-kubelet env CRISP_BINARY="$BIN/crisp" E2E_KUBELET_TIMEOUT_SCALE="$scale" "$ROOT/hack/e2e-kubelet.sh"
	rc=$?
	line=$(grep -E '^e2e-kubelet: [0-9]+ passed' "$OUT/e2e-kubelet.log" | tail -1)
	p=$(sed -n 's/^e2e-kubelet: \([0-9]*\) passed.*/\1/p' <<<"$line")
	f=$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<<"$line")
	grep '^FAIL:' "$OUT/e2e-kubelet.log" | sed 's/^/    /'
	record e2e-kubelet $rc $suite_secs "${p:-0}" "${f:-?}"
}

# script NAME PATH: a script that prints PASS:/FAIL: lines.
script() {
	local rc p f
	run_suite "$1" bash "$2"
	rc=$?
	p=$(grep -c '^PASS:' "$OUT/$1.log")
	f=$(grep -c '^FAIL:' "$OUT/$1.log")
	tail -5 "$OUT/$1.log" | sed 's/^/    /'
	record "$1" $rc $suite_secs "$p" "$f"
}

for s in $VM_SUITES; do
	export CRISP_CGROUP_DRIVER=$VM_CGROUP_DRIVER
	[[ $s != *:* ]] || CRISP_CGROUP_DRIVER=${s#*:}
	case ${s%%:*} in
	smoke) smoke ;;
	integration) integration ;;
	crictl-e2e) crictl_e2e ;;
	critest) critest ;;
	e2e-kubelet) e2e_kubelet ;;
	# crisp installed as crisp.service; the script configures the systemd
	# driver itself.
	systemd-restart) CRISP_CGROUP_DRIVER=systemd script systemd-restart "$ROOT/hack/vm/tests/systemd-restart.sh" ;;
	esac
done
if [[ -n $VM_SCRIPT ]]; then
	export CRISP_CGROUP_DRIVER=$VM_CGROUP_DRIVER
	script "$(basename "$VM_SCRIPT" .sh)" "$VM_SCRIPT"
fi
say "done: $failed_suites suite(s) failed"
((failed_suites == 0))
