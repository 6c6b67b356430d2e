#!/usr/bin/env bash
# hack/vm/tests/install-unit.sh: `make install` on a systemd node, then the
# installed unit starts crisp. Runs in the VM lane's guest (systemd as PID 1,
# cgroup v2), from the checkout's root:
#
#   VM_SUITES=none VM_SCRIPT=hack/vm/tests/install-unit.sh make vm-test
#
# Installs with hack/install.sh (what `make install` runs after `make build`;
# the guest uses _output/bin as built on the host), runs the installed
# `crisp check`, starts crisp.service with the installed configuration
# (commented-out defaults, the default CNI network) and talks to it with
# crictl through the installed /etc/crictl.yaml; then stops it, uninstalls
# and checks that only what was there before is left.
# Prints PASS:/FAIL: lines and "install-unit: N passed, N failed".
set -uo pipefail
repo=$(pwd)
bin=$repo/_output/bin

# shellcheck source=../../lib/checks.sh
. "$repo/hack/lib/checks.sh"
finish() {
	echo "install-unit: $passed passed, $failed failed"
	((failed == 0))
	exit
}

paths=(/usr/local/bin/crisp /usr/local/bin/crisp-monitor /etc/systemd/system/crisp.service /etc/crisp /etc/crictl.yaml /etc/cni /usr/local/share/crisp)
state() { local p; for p in "${paths[@]}"; do if [[ -e $p ]]; then find "$p" -type f | sort | xargs -r sha256sum; else echo "absent $p"; fi; done; }
before=$(state)

# 1. Install.
if out=$(BIN=$bin hack/install.sh install 2>&1); then pass "make install"; else fail "make install" "$out"; finish; fi
for f in /usr/local/bin/crisp /usr/local/bin/crisp-monitor /etc/systemd/system/crisp.service /etc/crisp/crisp.toml /etc/crictl.yaml; do
	if [[ -f $f ]]; then pass "installed $f"; else fail "installed $f" "$out"; fi
done

# 2. The installed crisp check passes on cgroup v2.
if out=$(/usr/local/bin/crisp check 2>&1); then pass "crisp check"; else fail "crisp check" "$out"; fi
sed 's/^/    /' <<<"$out"
grep -q '^ok    cgroup version       v2' <<<"$out" && pass "crisp check reports cgroup v2" || fail "crisp check reports cgroup v2" "$out"

# 3. The unit starts crisp; crictl finds it through /etc/crictl.yaml.
systemctl daemon-reload
systemctl start crisp
up=
for _ in $(seq 1 300); do
	if "$bin/crictl" version >/dev/null 2>&1; then up=1; break; fi
	sleep 0.2
done
if [[ -n $up ]]; then pass "crisp.service answers (pid $(systemctl show -p MainPID --value crisp))"; else
	fail "crisp.service answers" "$(journalctl -u crisp --no-pager | tail -20)"
fi
expect "unit runs the installed binary" "/usr/local/bin/crisp" "$(readlink "/proc/$(systemctl show -p MainPID --value crisp)/exe")"
info=$("$bin/crictl" info -o json 2>/dev/null)
expect "installed crisp.toml gives the defaults" "5m0s cgroupfs" "$(jq -r '"\(.config.image_pull_progress_timeout) \(.config.cgroup_driver)"' <<<"$info")"
if [[ -f /etc/cni/net.d/10-crisp.conflist ]]; then
	expect "NetworkReady with the installed network" true "$(jq -r '.status.conditions[] | select(.type=="NetworkReady") | .status' <<<"$info")"
fi
systemctl stop crisp

# 4. Uninstall leaves what was there before (crisp's root and state, made
# by running it, are not install's).
if out=$(hack/install.sh uninstall 2>&1); then pass "make uninstall"; else fail "make uninstall" "$out"; fi
systemctl daemon-reload
expect "uninstall leaves the node as before" "$before" "$(state)"
finish
