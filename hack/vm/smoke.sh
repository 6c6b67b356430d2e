#!/usr/bin/env bash
# hack/vm/smoke.sh: the VM lane's first, quick suite (about a minute under
# TCG): crisp's cgroup handling on this machine's hierarchy, through crictl
# against a crisp of its own (hack/lib/instance.sh). Two pods, each with a
# container with CPU and memory limits, one in crisp's default cgroup parent
# and one in a kubelet-style cgroupfs parent; the limits are read back from
# the container's cgroup (v2 or v1), stats and exec work, an update reaches
# the files, and nothing is left after rmp. Prints PASS:/FAIL: lines and
# "smoke: N passed, N failed"; exits non-zero if a check failed.
# Runs on the host too (cgroup v1): `flock /tmp/crisp-heavy.lock hack/vm/smoke.sh`.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CRISP_BINARY:-$repo/_output/bin/crisp}
image=registry.k8s.io/e2e-test-images/busybox:1.29-2
driver=${CRISP_CGROUP_DRIVER:-cgroupfs}

# shellcheck source=../lib/instance.sh
. "$repo/hack/lib/instance.sh"
trap 'instance_stop "$repo/_output/vm-smoke/crisp.log"' EXIT
instance_init vm-smoke
instance_start crvms0 10.212.12.0/24 || exit 1
printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 120\n' "$sock" "$sock" >"$work/crictl.yaml"
# stderr apart: crictl warns there (e.g. about a missing cgroup_parent)
# and the ids on stdout are what the checks use.
crictl() { "$repo/_output/bin/crictl" --config "$work/crictl.yaml" "$@" 2>>"$work/crictl.err"; }

# shellcheck source=../lib/checks.sh
. "$repo/hack/lib/checks.sh"
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

v2=0
[[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]] && v2=1
echo "cgroup $( ((v2)) && echo v2 || echo v1), driver $driver"

# cgfile PID V2FILE V1CONTROLLER V1FILE: the path of a cgroup file of PID.
cgfile() {
	local pid=$1 rel
	if ((v2)); then
		rel=$(sed -n 's/^0:://p' "/proc/$pid/cgroup")
		echo "/sys/fs/cgroup$rel/$2"
	else
		rel=$(awk -F: -v c="$3" '{ n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3 }' "/proc/$pid/cgroup")
		echo "/sys/fs/cgroup/$3$rel/$4"
	fi
}

t=$(now)
if crictl pull "$image" >/dev/null; then pass "pull ($(since "$t"))"; else fail "pull" "$(tail -5 "$work/crictl.err")"; exit 1; fi

# pod NAME [CGROUP_PARENT]: runs a pod and a container in it with 64 MiB and
# half a CPU; sets $pod_id, $ctr_id, $ctr_pid.
pod() {
	local name=$1 parent=${2:-} cp= t out
	[[ -z $parent ]] || cp=", \"cgroup_parent\": \"$parent\""
	cat >"$work/pod-$name.json" <<JSON
{"metadata": {"name": "$name", "namespace": "vm-smoke", "uid": "vm-smoke-$name", "attempt": 0},
 "hostname": "$name", "log_directory": "$work/logs/$name", "linux": {"security_context": {}$cp}}
JSON
	cat >"$work/ctr-$name.json" <<JSON
{"metadata": {"name": "sleeper"}, "image": {"image": "$image"}, "command": ["sleep", "3600"],
 "log_path": "sleeper.log",
 "linux": {"resources": {"memory_limit_in_bytes": 67108864, "cpu_period": 100000, "cpu_quota": 50000, "cpu_shares": 512}}}
JSON
	pod_id= ctr_id= ctr_pid=
	t=$(now)
	if ! out=$(crictl runp "$work/pod-$name.json"); then
		fail "runp $name" "$(tail -5 "$work/crictl.err")"
		return 1
	fi
	pod_id=$out
	pass "runp $name ($(since "$t"))"
	t=$(now)
	if ! out=$(crictl create "$pod_id" "$work/ctr-$name.json" "$work/pod-$name.json"); then
		fail "create in $name" "$(tail -5 "$work/crictl.err")"
		return 1
	fi
	ctr_id=$out
	if ! out=$(crictl start "$ctr_id"); then
		fail "start in $name" "$(tail -5 "$work/crictl.err")"
		return 1
	fi
	pass "create + start in $name ($(since "$t"))"
	ctr_pid=$(crictl inspect -o json "$ctr_id" | jq -r '.info.pid // empty')
	[[ -n $ctr_pid ]] || { fail "container pid of $name"; return 1; }
}

# limits NAME: the container's limits are in its cgroup files.
limits() {
	local name=$1
	if ((v2)); then
		expect "$name memory.max" 67108864 "$(cat "$(cgfile "$ctr_pid" memory.max)")"
		expect "$name cpu.max" "50000 100000" "$(cat "$(cgfile "$ctr_pid" cpu.max)")"
	else
		expect "$name memory.limit_in_bytes" 67108864 "$(cat "$(cgfile "$ctr_pid" - memory memory.limit_in_bytes)")"
		expect "$name cpu.cfs_quota_us" 50000 "$(cat "$(cgfile "$ctr_pid" - cpu cpu.cfs_quota_us)")"
	fi
}

declare -A pods=() pids=()
if pod first; then
	pods[first]=$pod_id pids[first]=$ctr_pid
	limits first
	first_ctr=$ctr_id
fi
# A second pod after a container started: on cgroup v2 that start enabled
# cpuset in the root's subtree_control, which once broke every later pod.
if pod second; then
	pods[second]=$pod_id pids[second]=$ctr_pid
	limits second
fi
# The third pod in a kubelet-style cgroup parent: a path with cgroupfs, a
# slice with systemd.
third_parent=/crisp-vm-smoke/besteffort/podthird
[[ $driver != systemd ]] || third_parent=crisp_vm_smoke_podthird.slice
if pod third "$third_parent"; then
	pods[third]=$pod_id pids[third]=$ctr_pid
	limits third
	expect "third: in its cgroup parent" yes \
		"$(grep -qF "/${third_parent#/}/" "/proc/$ctr_pid/cgroup" && echo yes || echo no)"
fi

if [[ -n ${first_ctr:-} ]]; then
	out=$(crictl exec -s "$first_ctr" sh -c 'echo exec-ok')
	expect "exec -s" exec-ok "$out"
	out=$(crictl stats -o json "$first_ctr")
	got=$(jq -r '.stats[0].memory.workingSetBytes.value // 0' <<<"$out" 2>/dev/null)
	if [[ ${got:-0} -gt 0 ]]; then pass "stats: working set $got bytes"; else fail "stats: working set" "$out"; fi
	got=$(jq -r '.stats[0].cpu.usageCoreNanoSeconds.value // 0' <<<"$out" 2>/dev/null)
	if [[ ${got:-0} -gt 0 ]]; then pass "stats: cpu usage $got ns"; else fail "stats: cpu usage" "$out"; fi
	# PSI and swap usage are reported exactly where the cgroup has the files
	# (cgroup v2; PSI also needs a kernel booted with it).
	has() { [[ -e $(cgfile "${pids[first]}" "$1") ]] && echo true || echo false; }
	expect "stats: cpu psi as cpu.pressure" "$( ((v2)) && has cpu.pressure || echo false)" "$(jq -r '.stats[0].cpu.psi != null' <<<"$out")"
	expect "stats: memory psi as memory.pressure" "$( ((v2)) && has memory.pressure || echo false)" "$(jq -r '.stats[0].memory.psi != null' <<<"$out")"
	expect "stats: io psi as io.pressure" "$( ((v2)) && has io.pressure || echo false)" "$(jq -r '.stats[0].io.psi != null' <<<"$out")"
	expect "stats: swap as memory.swap.current" "$( ((v2)) && has memory.swap.current || echo false)" "$(jq -r '.stats[0].swap != null' <<<"$out")"
	# The pod's PSI is its own cgroup's (pod_dir holds the container's
	# cgroup under both drivers): crisp's cpu.psi total lies between two
	# reads of the file around the call. (The CRI's PSI fields have
	# capitalised JSON names.)
	pod_dir=$(dirname "$(dirname "$(cgfile "${pids[first]}" cgroup.procs memory cgroup.procs)")")
	psi_total() { sed -n 's/^some .*total=\([0-9]*\)$/\1/p' "$pod_dir/cpu.pressure" 2>/dev/null; }
	before=$(psi_total)
	out=$(crictl statsp -o json "${pods[first]}")
	after=$(psi_total)
	expect "pod stats: cpu psi as the pod's cpu.pressure" "$( ((v2)) && [[ -e $pod_dir/cpu.pressure ]] && echo true || echo false)" "$(jq -r '.stats[0].linux.cpu.psi != null' <<<"$out")"
	expect "pod stats: memory psi as the pod's memory.pressure" "$( ((v2)) && [[ -e $pod_dir/memory.pressure ]] && echo true || echo false)" "$(jq -r '.stats[0].linux.memory.psi != null' <<<"$out")"
	expect "pod stats: io psi as the pod's io.pressure" "$( ((v2)) && [[ -e $pod_dir/io.pressure ]] && echo true || echo false)" "$(jq -r '.stats[0].linux.io.psi != null' <<<"$out")"
	if [[ -n $before ]]; then
		got=$(jq -r '.stats[0].linux.cpu.psi.Some.Total // "none"' <<<"$out")
		if [[ $got != none ]] && ((before <= got && got <= after)); then
			pass "pod stats: cpu psi total $got from $pod_dir/cpu.pressure ($before..$after)"
		else
			fail "pod stats: cpu psi total from $pod_dir/cpu.pressure" "crisp: $got ($(jq -c '.stats[0].linux.cpu' <<<"$out")), the file before and after: $before $after"
		fi
	fi
	if out=$(crictl update --memory 100663296 --cpu-quota 25000 "$first_ctr"); then
		if ((v2)); then
			expect "update: memory.max" 100663296 "$(cat "$(cgfile "${pids[first]}" memory.max)")"
			expect "update: cpu.max" "25000 100000" "$(cat "$(cgfile "${pids[first]}" cpu.max)")"
		else
			expect "update: memory.limit_in_bytes" 100663296 "$(cat "$(cgfile "${pids[first]}" - memory memory.limit_in_bytes)")"
			expect "update: cpu.cfs_quota_us" 25000 "$(cat "$(cgfile "${pids[first]}" - cpu cpu.cfs_quota_us)")"
		fi
	else
		fail "update" "$(tail -5 "$work/crictl.err")"
	fi
fi

# Every pod's cgroup goes with it.
declare -A cgdirs=()
for n in "${!pids[@]}"; do
	cgdirs[$n]=$(dirname "$(cgfile "${pids[$n]}" cgroup.procs memory cgroup.procs)")
done
for n in "${!pods[@]}"; do
	t=$(now)
	if crictl stopp "${pods[$n]}" >/dev/null && crictl rmp "${pods[$n]}" >/dev/null; then
		pass "stopp + rmp $n ($(since "$t"))"
	else
		fail "stopp + rmp $n" "$(tail -5 "$work/crictl.err")"
	fi
done
for n in "${!cgdirs[@]}"; do
	d=${cgdirs[$n]}
	expect "$n: container cgroup removed" gone "$([[ -e $d ]] && echo "left: $d" || echo gone)"
	expect "$n: pod cgroup removed" gone "$([[ -e $(dirname "$d") ]] && echo "left: $(dirname "$d")" || echo gone)"
done
rmdir /sys/fs/cgroup/crisp-vm-smoke/besteffort /sys/fs/cgroup/crisp-vm-smoke 2>/dev/null
for c in memory cpu,cpuacct pids; do
	rmdir "/sys/fs/cgroup/$c/crisp-vm-smoke/besteffort" "/sys/fs/cgroup/$c/crisp-vm-smoke" 2>/dev/null
done

echo "smoke: $passed passed, $failed failed"
((failed == 0))
