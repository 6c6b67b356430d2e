#!/usr/bin/env bash
# hack/e2e-kubelet.sh: a real kubelet (standalone, static pods, no API server)
# runs pods on crisp. Builds or reuses _output/bin/kubelet
# (hack/kubelet/build.sh), starts crisp and kubelet on private roots, sockets,
# ports, pod network (10.213.0.0/24 on crkub0) and cgroup root, and checks
# through crictl on crisp's socket and kubelet's healthz and read-only ports:
#
#   a pod runs and its log reads back; exec readiness and liveness probes make
#   a two-container pod Ready; a memory/CPU limit reaches the container
#   cgroup; a device plugin's CDI devices reach a container (hack/kubelet/cdi.sh); a crash-looping container is restarted with growing attempts;
#   restarting kubelet, then crisp, restarts no container; editing a manifest
#   replaces the pod; deleting the manifests removes every pod and leaves no
#   mount, namespace pin, veth, pod cgroup or monitor behind; /stats/summary
#   has CPU and memory for the pods.
#
# Prints the time from manifest written to pod Ready, the kubelet error lines
# left in its log, and a closing "e2e-kubelet: N passed, N failed" line.
# Logs of both daemons are kept in _output/e2e-kubelet/. One run per machine at
# a time (fixed ports, bridge and cgroup root); a second run waits.
#
# Environment: CRISP_BINARY, CRISP_TEST_REGISTRY (default 127.0.0.1:5000),
# E2E_KUBELET_TIMEOUT_SCALE (default 1): multiplies every wait and the exec
# probes' timeoutSeconds (the VM lane's emulated guest needs 4).
# CRISP_CGROUP_DRIVER (default cgroupfs): kubelet's and crisp's cgroup driver;
# systemd wants cgroup v2 with systemd running (the VM lane's guest).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/_output/bin
REGISTRY=${CRISP_TEST_REGISTRY:-127.0.0.1:5000}
IMAGE=registry.k8s.io/e2e-test-images/busybox:1.29-2
SCALE=${E2E_KUBELET_TIMEOUT_SCALE:-1}

"$ROOT/hack/kubelet/build.sh"
if [[ -n ${CRISP_BINARY:-} && $CRISP_BINARY != "$BIN/crisp" ]]; then
	echo "e2e-kubelet: CRISP_BINARY must be $BIN/crisp (crisp finds crisp-monitor next to itself)" >&2
	exit 1
fi
for b in crisp crisp-monitor crictl kubelet e2e-deviceplugin; do
	[[ -x $BIN/$b ]] || { echo "e2e-kubelet: $BIN/$b missing: run make build deps" >&2; exit 1; }
done

exec 8>/run/lock/crisp-e2e-kubelet.lock
flock 8
"$ROOT/hack/registry.sh" start >/dev/null

WORK=$(mktemp -d /tmp/crisp-e2e-kubelet-XXXXXX)
# Searchable by others, as crisp wants for pods with user namespaces.
chmod 0711 "$WORK"
# shellcheck source=hack/kubelet/lib.sh
source "$ROOT/hack/kubelet/lib.sh"
started=$SECONDS

# pass/fail and their counts; fail's DETAIL is what the check last saw.
# shellcheck source=lib/checks.sh
source "$ROOT/hack/lib/checks.sh"
# Checks return 0 even when they fail (the failure is counted), so one failed
# check does not hide the others; `must` stops the run when later checks
# depend on the one it runs.
# eventually TIMEOUT DESC CMD...: poll CMD every 0.5s until it succeeds.
eventually() {
	local timeout=$(($1 * SCALE)) desc=$2 deadline=$((SECONDS + $1 * SCALE)) out
	shift 2
	until out=$("$@" 2>&1); do
		if ((SECONDS >= deadline)); then
			fail "$desc (not within ${timeout}s)" "$out"
			return 0
		fi
		sleep 0.5
	done
	pass "$desc"
}
check() {
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then pass "$desc"; else fail "$desc" "$out"; fi
}
must() {
	local before=$failed
	"$@"
	((failed == before)) || { log "stopping: the checks after this one depend on it"; exit 1; }
}

# shellcheck source=hack/kubelet/pods.sh
source "$ROOT/hack/kubelet/pods.sh"
# shellcheck source=hack/kubelet/cdi.sh
source "$ROOT/hack/kubelet/cdi.sh"

not() { ! "$@"; }
# all_ready: every long-running pod is Ready; if not, prints what kubelet
# reports of those that are not.
all_ready() {
	local l bad=()
	for l in single probes limited; do ready "$l" || bad+=("$l"); done
	((${#bad[@]} == 0)) && return 0
	pods_json | jq -c --arg b " ${bad[*]} " '.items[]? | select($b | contains(" " + .metadata.labels.e2e + " ")) |
		{pod: .metadata.name, containers: [.status.containerStatuses[]? | {name, ready, restartCount, state: (.state | keys[0])}]}'
	return 1
}
no_pods() { pods_json | jq -e '.items | length == 0'; }
no_sandboxes() { [[ -z $(cri pods -q) && -z $(cri ps -aq) ]]; }
exit_code() { cri inspect "$1" | jq -r .status.exitCode; }
cgroup_root_gone() { local d; for d in "${created_cgroups[@]}"; do [[ ! -d $d ]] || return 1; done; }
# has_log ID TEXT: crictl logs of ID has TEXT; otherwise prints what it saw:
# the log, the container's state and its log file.
has_log() {
	local out f
	out=$(cri logs "$1" 2>&1)
	grep -qF "$2" <<<"$out" && return 0
	echo "crictl logs $1: ${out:-(nothing)}"
	cri inspect "$1" 2>&1 | jq -c '.status | {state, exitCode, reason, startedAt, finishedAt, logPath}' 2>&1
	f=$(cri inspect "$1" 2>/dev/null | jq -r '.status.logPath // empty')
	[[ -z $f ]] || ls -l "$f" 2>&1
	return 1
}
# empty CMD...: CMD succeeds and prints nothing (what it printed is the detail).
empty() { local out; out=$("$@") || return 1; [[ -z $out ]] || { echo "$out"; return 1; }; }
same() { [[ $1 == "$2" ]] || { diff <(echo "$1") <(echo "$2") | sed 's/^/    /'; return 1; }; }

# report: manifest-to-Ready times and kubelet's error lines, then the closing
# line. Runs at exit, after teardown, also when a `must` check stopped the run.
report() {
	local fresh=() replaced='' r sorted kubelet_log=$ROOT/_output/e2e-kubelet/kubelet.log
	# Fresh pods (the first image pull included) and the replaced pod apart:
	# kubelet starts a static pod's replacement only at its pod worker's next
	# back-off (10s) after the old one is gone.
	for r in "${ready_ms[@]}"; do
		case $r in single:gen2=*) replaced=${r#*=} ;; *) fresh+=("${r#*=}") ;; esac
	done
	if ((${#fresh[@]})); then
		mapfile -t sorted < <(printf '%s\n' "${fresh[@]}" | sort -n)
		log "manifest written -> pod Ready: ${sorted[*]} ms, p50 ${sorted[(${#sorted[@]} - 1) / 2]} ms; edited manifest -> replacement Ready: ${replaced:-?} ms"
	fi
	# kubelet's error lines by source line and message, ids and paths folded,
	# for a person to judge (README says why each known one is harmless).
	local errors
	errors=$(grep -E '^E[0-9]{4} ' "$kubelet_log" 2>/dev/null || true)
	log "kubelet error lines: $(grep -c . <<<"$errors" || true); distinct:"
	sed -E -e 's/^E[0-9]{4} [0-9:.]+ +[0-9]+ //' -e 's/[0-9a-f]{32,64}/<id>/g' -e "s#$WORK#<work>#g" \
		-e 's/(err="([^"\\]|\\.){0,100}).*/\1"/' <<<"$errors" | sort | uniq -c | sort -rn | head -40 >&2
	log "done in $((SECONDS - started))s; logs in _output/e2e-kubelet/"
	echo "e2e-kubelet: $passed passed, $failed failed"
}
finish() {
	local rc=$?
	# A set-up step that died is a failure too.
	((rc == 0 || failed > 0)) || fail "the run stopped early (exit status $rc), see above"
	stop_device_plugin
	teardown
	report
	((rc == 0 && failed == 0)) || exit 1
}
trap finish EXIT

log "crisp and kubelet in $WORK"
setup_host
setup_cdi
start_crisp
start_kubelet
pass "kubelet starts on crisp and its healthz answers"
# From here a failed command is a failed check, counted, not the end of the
# run: `must` ends it where later checks would only repeat a failure.
set +e

# --- pods start ------------------------------------------------------------
single_pod gen1
probes_pod
limited_pod
crasher_pod
shm_pod
hugepages_pod
must wait_ready single:gen1 probes limited
wait_ready shm hugepages

s=$(sandbox single)
c=$(container_id "$s" main)
eventually 10 "crictl logs reads the pod's output" has_log "$c" "hello from gen1"
name=$(pod_name single)
check "kubelet reads the container log itself (/containerLogs)" \
	grep -qF "hello from gen1" <(kubelet_get "/containerLogs/default/$name/main")

pod_ip() { pods_json | jq -r --arg l "$1" '.items[]? | select(.metadata.labels.e2e == $l) | .status.podIP'; }
ip=$(pod_ip single)
check "kubelet reports the pod IP crisp gave the sandbox ($ip)" \
	test -n "$ip" -a "$ip" = "$(cri inspectp "$s" | jq -r .status.network.ip)" -a "${ip%.*}" = "${SUBNET%.*}"

s=$(sandbox probes)
check "the probes pod runs two containers" test "$(running "$s" | wc -l)" -eq 2
check "its containers share kubelet's emptyDir volume" grep -qx from-web <(cri exec "$(container_id "$s" sidecar)" cat /data/web)
# The web container runs (a probe may have restarted it under load).
must eventually 30 "the probes pod's web container is running" test -n "$(container_id "$s" web)"
web=$(container_id "$s" web)
# The readiness probe really runs: without its file the pod turns NotReady,
# and Ready again once the file is back. NotReady takes three failed probes
# (failureThreshold) a period apart, each an exec, then kubelet's status
# sync.
cri exec "$web" rm -f /tmp/ready >/dev/null || log "exec rm -f /tmp/ready in the web container failed"
eventually 40 "a failing exec readiness probe makes the pod NotReady" not ready probes
cri exec "$web" touch /tmp/ready >/dev/null || log "exec touch /tmp/ready in the web container failed"
eventually 40 "a passing exec readiness probe makes it Ready again" ready probes

s=$(sandbox limited)
c=$(container_id "$s" main)
pid=$(cri inspect "$c" | jq -r '.info.pid')
if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
	check "64Mi memory limit in the container cgroup (memory.max)" test "$(cat "$(cgroup_file "$pid" memory - memory.max)")" = 67108864
	check "250m CPU limit in the container cgroup (cpu.max)" test "$(cat "$(cgroup_file "$pid" cpu - cpu.max)")" = "25000 100000"
else
	check "64Mi memory limit in the container cgroup (memory.limit_in_bytes)" test "$(cat "$(cgroup_file "$pid" memory memory.limit_in_bytes)")" = 67108864
	check "250m CPU limit in the container cgroup (cpu.cfs_quota_us)" test "$(cat "$(cgroup_file "$pid" cpu cpu.cfs_quota_us)")" = 25000
fi
if [[ $DRIVER == systemd ]]; then
	# kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/<container>.scope
	check "the container is a scope in kubelet's pod slice" \
		grep -qE '^/sys/fs/cgroup/kubepods\.slice/(kubepods-[a-z]+\.slice/)?kubepods(-[a-z]+)?-pod[0-9a-f_]+\.slice/[^/]+\.scope/-$' <(cgroup_file "$pid" memory - -)
	check "systemd knows the pod slice and the container scope" systemctl is-active --quiet \
		"$(basename "$(dirname "$(dirname "$(cgroup_file "$pid" memory - -)")")")" "$(basename "$(dirname "$(cgroup_file "$pid" memory - -)")")"
else
	check "the container cgroup is under kubelet's pod cgroup" grep -q "/$CGROOT/kubepods/pod" <(cgroup_file "$pid" memory - -)
fi

# --- CDI devices ------------------------------------------------------------------
start_device_plugin
must eventually 30 "a device plugin offers vendor.example/gpu to kubelet" device_plugin_listed
cdi_pod
must wait_ready cdi
s=$(sandbox cdi)
c=$(container_id "$s" main)
inside=$(cdi_inside "$c" 2>&1)
log "inside the CDI pod's container: $(paste -sd';' <<<"$inside")"
check "the plugin's CDI devices are in the container: nodes, cgroup access, env, the spec's mount" same "$inside" "$(printf '%s\n' \
	'gpu0 character special file a:e5' 'gpu1 character special file 1:5' 'gpu0 open rw ok' 'gpu1 read 0000000000000000' \
	'env 1.0 present present' 'mount vendor-lib-1.0')"
# One device came as ContainerConfig.CDI_devices, the other as a cdi.k8s.io/* annotation.
cdi_routes() {
	cri inspect "$c" | jq -e '[(.info.record.containerConfig.cdiDevices // [] | length), (.status.annotations | with_entries(select(.key | startswith("cdi.k8s.io/"))) | length)] == [1, 1]'
}
check "kubelet passed one device by the CRI field and one by annotation" cdi_routes
rm -f "$MANIFESTS/cdi.yaml"
eventually 60 "the CDI pod goes away with its manifest" empty cri pods --label e2e=cdi -q
stop_device_plugin

# --- data-science pods: /dev/shm, ulimits, hugepages ---------------------------------
s=$(sandbox shm)
c=$(container_id "$s" main)
eventually 30 "the shm pod wrote 256 MiB into its /dev/shm" has_log "$c" shm-filled
check "the shm pod's /dev/shm is 2Gi, as its io.kubernetes.cri-o.ShmSize annotation says" \
	grep -qE '^shm +2097152 ' <(cri exec "$c" df -k /dev/shm)
check "its crisp-runtime.io/ulimits annotation sets nofile 1000:2000 (exec)" \
	grep -qE '^Max open files +1000 +2000 ' <(cri exec "$c" cat /proc/self/limits)
s=$(sandbox hugepages)
c=$(container_id "$s" main)
eventually 30 "a container limited to hugepages-2Mi: 8Mi maps 4 pages" has_log "$c" "mapped 4"
eventually 10 "and fails to map 5" has_log "$c" "mmap of 5 pages"
check "its status reports the 2MB hugepage limit (8 MiB)" \
	test "$(cri inspect "$c" | jq -r '.status.resources.linux.hugepageLimits[]? | select(.pageSize == "2MB") | .limit')" = 8388608

# --- crash loop ---------------------------------------------------------------
crash_attempts() { cri ps -a --pod "$(sandbox crasher)" -o json | jq '[.containers[]?.metadata.attempt] | max // -1'; }
# Attempts already made while the other pods started do not count: watch
# two more restarts.
a0=$(crash_attempts)
seen=("$a0")
deadline=$((SECONDS + 60 * SCALE))
while ((SECONDS < deadline && seen[-1] < a0 + 2)); do
	a=$(crash_attempts 2>/dev/null || echo -1)
	((a == seen[-1])) || seen+=("$a")
	sleep 0.5
done
if ((seen[-1] >= a0 + 2)) && [[ $(printf '%s\n' "${seen[@]}" | sort -n | uniq | tr '\n' ' ') == "$(printf '%s\n' "${seen[@]}" | tr '\n' ' ')" ]]; then
	pass "a crash-looping container is restarted with growing attempts (${seen[*]})"
else
	fail "a crash-looping container is restarted with growing attempts" "attempts seen: ${seen[*]}, want two more than $a0 within 60s"
fi
check "kubelet counts the restarts" test "$(restarts crasher)" -ge 2
last=$(cri ps -a --pod "$(sandbox crasher)" --state exited -o json | jq -r '.containers | max_by(.metadata.attempt) | .id')
check "the crashed container's exit code (3) is reported" test "$(exit_code "$last")" = 3
check "the crashed container's log reads back" has_log "$last" crashing

# --- stats ----------------------------------------------------------------------
# stats_ok JQ: every running pod's summary entry satisfies JQ.
stats_ok() {
	readonly_get /stats/summary | jq -e "[.pods[]? | select(.podRef.name | test(\"^(single|probes|limited)-\")) | select($1)] | length == 3"
}
# By default kubelet takes pod CPU and memory from cadvisor (pod cgroups) and
# container stats from crisp; pod network stats come only from cadvisor's
# containerd and CRI-O plugins, so a pod on crisp has none in this mode.
eventually 60 "/stats/summary has CPU and memory of the running pods" \
	stats_ok '.cpu.usageCoreNanoSeconds > 0 and .memory.workingSetBytes > 0 and (.containers | all(.cpu.usageCoreNanoSeconds > 0))'

# --- kubelet restart --------------------------------------------------------------
# It comes back with every stat taken from crisp (PodAndContainerStatsFromCRI).
before=$(snapshot)
stop_kubelet
write_kubelet_config PodAndContainerStatsFromCRI=true EventedPLEG=true
start_kubelet
pass "kubelet restarts and its healthz answers"
eventually 60 "after a kubelet restart the pods are Ready again" all_ready
sleep 5
check "kubelet adopts the running pods: same sandboxes, containers and attempts" same "$before" "$(snapshot)"
eventually 60 "/stats/summary from crisp alone has CPU, memory and network of the running pods" \
	stats_ok '.cpu.usageCoreNanoSeconds > 0 and .memory.workingSetBytes > 0 and .network.rxBytes > 0 and (.containers | all(.cpu.usageCoreNanoSeconds > 0 and .memory.workingSetBytes > 0))'
cadvisor_metrics_ok() {
	readonly_get /metrics/cadvisor | grep -cE '^container_cpu_usage_seconds_total\{container="(main|web|sidecar)",.*pod="(single|probes|limited)-' | grep -qx 4
}
eventually 30 "/metrics/cadvisor from crisp's pod metrics has each container's CPU" cadvisor_metrics_ok

# --- crisp restart ------------------------------------------------------------------
before=$(snapshot)
stop_crisp
sleep 3
start_crisp
pass "crisp restarts under a running kubelet"
eventually 60 "kubelet healthz answers after crisp's restart" healthz
sleep 10
eventually 30 "after crisp's restart the pods are Ready" all_ready
check "kubelet restarts nothing when crisp restarts: same sandboxes, containers and attempts" same "$before" "$(snapshot)"
check "kubelet is still running" kill -0 "$kubelet_pid"

# --- edit -------------------------------------------------------------------------
old=$(sandbox single)
single_pod gen2
wait_ready single:gen2
new=$(sandbox single gen2) || new=
check "editing a manifest replaces the pod (new sandbox)" test -n "$new" -a "$new" != "$old"
eventually 30 "the old pod's sandbox is stopped" empty cri pods --id "$old" --state ready -q
[[ -n $new ]] && eventually 10 "the new pod logs its generation" has_log "$(container_id "$new" main)" "hello from gen2"

check "the liveness probe restarted nothing" test "$(restarts probes)" -eq 0

# --- delete -----------------------------------------------------------------------------
rm -f "$MANIFESTS"/*.yaml
eventually 60 "kubelet drops every pod when the manifests are deleted" no_pods
eventually 60 "no sandbox is ready" empty cri pods --state ready -q
eventually 120 "kubelet removes every sandbox and container" no_sandboxes
eventually 30 "no mount left under crisp's root and state" empty our_mounts
eventually 10 "no namespace pin left" empty ls -A "$WORK/state/ns"
eventually 10 "no pod shm directory left" empty ls -A "$WORK/state/pods"
eventually 10 "no veth left on $BRIDGE" empty bridge_veths
eventually 30 "no pod cgroup left" empty pod_cgroups
eventually 10 "no crisp-monitor process left" empty monitor_pids
eventually 60 "no pod log directory left" empty ls -A "$WORK/pod-logs"
check "kubelet healthz still answers" healthz

# --- host ------------------------------------------------------------------------------------
stop_kubelet
stop_crisp
remove_cgroup_root
check "kubelet's cgroup root can be removed (nothing left in it)" cgroup_root_gone
for s in "${!saved_sysctl[@]}"; do sysctl -qw "$s=${saved_sysctl[$s]}" >/dev/null; done
check "kubelet added no KUBE-* iptables chain" test "$(kube_chains)" = "$kube_chains_before"
