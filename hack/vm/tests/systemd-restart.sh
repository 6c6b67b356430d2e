#!/usr/bin/env bash
# hack/vm/tests/systemd-restart.sh: crisp as a systemd service with the
# systemd cgroup driver keeps its workloads across restarts. Runs in the VM
# lane's guest (systemd as PID 1, cgroup v2), from the checkout's root:
#
#   VM_SUITES=systemd-restart make vm-test
#
# Installs _output/bin's crisp like `make install` (binaries in
# /usr/local/bin, hack/systemd/crisp.service) with cgroup_driver = "systemd",
# runs two host-network pods: a shared-PID one (with a reaper) running a
# logger, and one with a logger and a container that exits on a signal
# file. Checks the units and cgroups (pod slices, container scopes, monitor
# and reaper scopes, nothing but crisp in crisp.service), then
# `systemctl restart crisp` (with the unit's KillMode=process and with
# systemd's default control-group), `systemctl kill -s KILL crisp` + start, a stop
# during which a container exits, and 5 kill -9 restarts in a row by
# Restart=always: after each, every container, monitor and reaper is the same
# process, nothing restarted. At the end the CRI logs are checked line by
# line for a gap, and after rmp no unit, cgroup, process or mount is left.
# Prints PASS:/FAIL: lines and "systemd-restart: N passed, N failed".
set -uo pipefail
repo=$(pwd)
bin=$repo/_output/bin
image=registry.k8s.io/e2e-test-images/busybox:1.29-2
sock=/run/crisp/crisp.sock
work=$(mktemp -d /tmp/systemd-restart-XXXXXX)
chmod 711 "$work"

# shellcheck source=../../lib/checks.sh
. "$repo/hack/lib/checks.sh"
up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "--- [$(up)s] $*"; }
finish() {
	echo "systemd-restart: $passed passed, $failed failed"
	((failed == 0))
	exit
}
crictl() { "$bin/crictl" --runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock" --timeout 120s "$@" 2>>"$work/crictl.err"; }

# cgroup_of PID: its v2 cgroup path.
cgroup_of() { sed -n 's/^0:://p' "/proc/$1/cgroup" 2>/dev/null; }
main_pid() { systemctl show -p MainPID --value crisp; }
# wait_crisp [OLD_PID]: until crisp runs (with another main PID than OLD)
# and answers on its socket.
wait_crisp() {
	local old=${1:-} p
	for _ in $(seq 1 600); do
		p=$(main_pid)
		if [[ $p != 0 && $p != "$old" ]] && crictl version >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# 1. Install as `make install` does, with the systemd driver.
install -m 0755 "$bin/crisp" "$bin/crisp-monitor" /usr/local/bin/
install -m 0644 "$repo/hack/systemd/crisp.service" /etc/systemd/system/crisp.service
mkdir -p /etc/crisp
{
	echo 'cgroup_driver = "systemd"'
	printf '[registries."registry.k8s.io"]\nmirrors = ["http://127.0.0.1:5000"]\nskip_upstream = true\n'
} >/etc/crisp/crisp.toml
mkdir -p /etc/systemd/system/crisp.service.d
# Verbose RPC log lines, for the record (journal).
printf '[Service]\nExecStart=\nExecStart=/usr/local/bin/crisp --listen %s -v=2\n' "$sock" >/etc/systemd/system/crisp.service.d/verbose.conf
systemctl daemon-reload
systemctl start crisp
if wait_crisp; then pass "crisp.service up (pid $(main_pid))"; else
	fail "crisp.service up" "$(journalctl -u crisp --no-pager | tail -20)"
	finish
fi
expect "cgroup driver in crictl info" systemd "$(crictl info -o json | jq -r '.config.cgroup_driver // empty')"
crictl pull "$image" >/dev/null || { fail "pull" "$(tail -5 "$work/crictl.err")"; finish; }

# 2. Pods and containers.
mkdir -p "$work/logs" "$work/flag"
# pod NAME PIDMODE: a host-network pod (PIDMODE 0 = POD: shared, reaper).
pod() {
	cat >"$work/pod-$1.json" <<JSON
{"metadata": {"name": "$1", "namespace": "vm-systemd", "uid": "vm-systemd-$1", "attempt": 0},
 "log_directory": "$work/logs/$1",
 "linux": {"security_context": {"namespace_options": {"network": 2, "pid": $2}}}}
JSON
	crictl runp "$work/pod-$1.json"
}
# ctr POD NAME SCRIPT: created and started; prints the id.
ctr() {
	cat >"$work/ctr-$1-$2.json" <<JSON
{"metadata": {"name": "$2"}, "image": {"image": "$image"}, "command": ["sh", "-c", "$3"],
 "log_path": "$2.log", "mounts": [{"container_path": "/flag", "host_path": "$work/flag"}],
 "linux": {"resources": {"memory_limit_in_bytes": 67108864}}}
JSON
	local id
	id=$(crictl create "${pods[$1]}" "$work/ctr-$1-$2.json" "$work/pod-$1.json") && crictl start "$id" >/dev/null && echo "$id"
}
logger='i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.1; done'
declare -A pods=() ctrs=()
pods[shared]=$(pod shared 0) || { fail "runp shared" "$(tail -5 "$work/crictl.err")"; finish; }
pods[plain]=$(pod plain 1) || { fail "runp plain" "$(tail -5 "$work/crictl.err")"; finish; }
ctrs[slog]=$(ctr shared slog "$logger") || { fail "container slog" "$(tail -5 "$work/crictl.err")"; finish; }
ctrs[plog]=$(ctr plain plog "$logger") || { fail "container plog" "$(tail -5 "$work/crictl.err")"; finish; }
ctrs[quit]=$(ctr plain quit 'until [ -e /flag/quit ]; do sleep 0.1; done; exit 7') ||
	{ fail "container quit" "$(tail -5 "$work/crictl.err")"; finish; }
pass "2 pods, 3 containers running"

# 3. Units and cgroups.
declare -A podcg=() initpid=() monpid=()
reaper=$(crictl inspectp -o json "${pods[shared]}" | jq -r '.info.reaper.pid // empty')
for p in shared plain; do
	podcg[$p]=$(crictl inspectp -o json "${pods[$p]}" | jq -r '.info.cgroup // empty')
	expect "pod $p: its own slice" "/crisp.slice/crisp-pod${pods[$p]}.slice" "${podcg[$p]}"
	expect "pod $p: slice unit active" active "$(systemctl is-active "crisp-pod${pods[$p]}.slice")"
done
ctrpod() { case $1 in slog) echo shared ;; *) echo plain ;; esac; }
for c in slog plog quit; do
	id=${ctrs[$c]}
	initpid[$c]=$(crictl inspect -o json "$id" | jq -r '.info.pid // empty')
	monpid[$c]=$(jq -r '.monitor_pid' "/var/lib/crisp/containers/$id/bundle/status.json")
	slice=${podcg[$(ctrpod "$c")]}
	expect "$c: container in its scope" "$slice/crisp-$id.scope" "$(cgroup_of "${initpid[$c]}")"
	expect "$c: container scope active" active "$(systemctl is-active "crisp-$id.scope")"
	expect "$c: monitor in its scope" "$slice/crisp-monitor-$id.scope" "$(cgroup_of "${monpid[$c]}")"
done
if [[ -n $reaper ]]; then
	expect "reaper in its scope" "${podcg[shared]}/crisp-reaper-${pods[shared]}.scope" "$(cgroup_of "$reaper")"
else
	fail "shared-PID pod has a reaper"
fi
unitcg=/sys/fs/cgroup/system.slice/crisp.service
expect "crisp.service holds crisp alone" "$(main_pid)" "$(cat "$unitcg/cgroup.procs" | tr '\n' ' ' | sed 's/ $//')"
expect "memory.max of a container scope" 67108864 "$(cat "/sys/fs/cgroup${podcg[plain]}/crisp-${ctrs[plog]}.scope/memory.max")"

# same WHAT: every container, monitor and reaper is the process it was,
# every container still running, no container restarted.
same() {
	local what=$1 bad=
	for c in "${!initpid[@]}"; do
		kill -0 "${initpid[$c]}" 2>/dev/null || bad+=" $c's init ${initpid[$c]} gone;"
		kill -0 "${monpid[$c]}" 2>/dev/null || bad+=" $c's monitor ${monpid[$c]} gone;"
		st=$(crictl inspect -o json "${ctrs[$c]}" | jq -r '.status.state')
		[[ $st == CONTAINER_RUNNING ]] || bad+=" $c is $st;"
	done
	kill -0 "$reaper" 2>/dev/null || bad+=" reaper $reaper gone;"
	for p in shared plain; do
		st=$(crictl inspectp -o json "${pods[$p]}" | jq -r '.status.state')
		[[ $st == SANDBOX_READY ]] || bad+=" pod $p is $st;"
	done
	n=$(crictl ps -a -q | wc -l)
	((n == ${#initpid[@]})) || bad+=" $n containers listed;"
	if [[ -z $bad ]]; then pass "$what: all containers, monitors and the reaper kept"; else
		# Why crisp changed a pod's state, from its own log.
		fail "$what:$bad" "$(journalctl -u crisp --no-pager -o short-monotonic | grep -E 'not ready|reaper|lost its|Rolling back|quarantined' | tail -20)"
	fi
}

# 4. systemctl restart.
say "systemctl restart crisp"
old=$(main_pid)
systemctl restart crisp
if wait_crisp "$old"; then pass "restart: crisp back (pid $(main_pid))"; else fail "restart: crisp back"; finish; fi
same "systemctl restart"

# 4b. The same with systemd's default KillMode=control-group: nothing of the
# pods may be in crisp.service's cgroup, whatever the unit says.
mkdir -p /etc/systemd/system/crisp.service.d
printf '[Service]\nKillMode=control-group\n' >/etc/systemd/system/crisp.service.d/killmode.conf
systemctl daemon-reload
say "systemctl restart crisp with KillMode=$(systemctl show -p KillMode --value crisp)"
old=$(main_pid)
systemctl restart crisp
if wait_crisp "$old"; then pass "restart (KillMode=control-group): crisp back"; else fail "restart (KillMode=control-group): crisp back"; finish; fi
same "systemctl restart with KillMode=control-group"
rm /etc/systemd/system/crisp.service.d/killmode.conf
systemctl daemon-reload

# 5. SIGKILL, then an explicit start (Restart=always may be first).
say "systemctl kill -s KILL crisp"
old=$(main_pid)
systemctl kill -s KILL crisp
sleep 0.5
systemctl start crisp
if wait_crisp "$old"; then pass "kill -9: crisp back (pid $(main_pid))"; else fail "kill -9: crisp back"; finish; fi
same "systemctl kill -s KILL + start"

# 6. A stop during which a container exits: reported when crisp is back.
say "systemctl stop crisp; a container exits meanwhile"
systemctl stop crisp
touch "$work/flag/quit"
for _ in $(seq 1 300); do kill -0 "${initpid[quit]}" 2>/dev/null || break; sleep 0.1; done
sleep 1 # the monitor records the exit
systemctl start crisp
if wait_crisp; then pass "start after stop"; else fail "start after stop"; finish; fi
got=$(crictl inspect -o json "${ctrs[quit]}" | jq -r '"\(.status.state) \(.status.exitCode)"')
expect "exit during the stop reported" "CONTAINER_EXITED 7" "$got"
unset 'initpid[quit]' 'monpid[quit]'
crictl rm "${ctrs[quit]}" >/dev/null || fail "rm quit"
expect "monitor scope of the removed container gone" inactive "$(systemctl is-active "crisp-monitor-${ctrs[quit]}.scope")"
same "stop + start"

# 7. A crash loop: 5 kills in a row, each restarted by Restart=always.
restarts=$(systemctl show -p NRestarts --value crisp)
for i in 1 2 3 4 5; do
	old=$(main_pid)
	systemctl kill -s KILL crisp
	if wait_crisp "$old"; then pass "crash $i: restarted by systemd (pid $(main_pid))"; else
		fail "crash $i: not restarted" "$(systemctl status crisp --no-pager | tail -10)"
		finish
	fi
done
same "5 crashes in a row"
expect "restarts by systemd" 5 "$(($(systemctl show -p NRestarts --value crisp) - restarts))"

# 8. The CRI logs have no gap: stop the loggers, read line-0 .. line-N.
for c in slog plog; do
	crictl stop -t 0 "${ctrs[$c]}" >/dev/null
	f=$work/logs/$(ctrpod "$c")/$c.log
	# CRI log lines: TIME STREAM TAG TEXT.
	bad=$(awk '$4 != "line-" (NR - 1) { print "line " NR ": " $0; exit }' "$f")
	n=$(wc -l <"$f")
	if [[ -z $bad && $n -gt 50 ]]; then pass "$c: $n log lines, none lost or doubled"; else fail "$c log ($n lines)" "$bad"; fi
done

# 9. Nothing left after rmp.
for p in shared plain; do crictl rmp -f "${pods[$p]}" >/dev/null || fail "rmp $p"; done
left=$(systemctl list-units --all --plain --no-legend 'crisp-*' | awk '{print $1}')
expect "no crisp-* unit left" "" "$left"
expect "crisp.slice empty" "" "$(find /sys/fs/cgroup/crisp.slice -mindepth 1 -type d 2>/dev/null)"
expect "no monitor left" "" "$(pgrep -f '^/usr/local/bin/crisp-monitor' || true)"
expect "no mount under /run/crisp" "" "$(grep ' /run/crisp/' /proc/self/mountinfo | grep -v -e '/run/crisp/ns ' -e '/run/crisp/pods ' || true)"

systemctl stop crisp
finish
