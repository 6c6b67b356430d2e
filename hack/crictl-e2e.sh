#!/usr/bin/env bash
# hack/crictl-e2e.sh: what an operator does with crictl, step by step, against
# a crisp started here on a fresh root (hack/lib/instance.sh): pull, runp,
# create, start, ps, logs, exec, stats, port-forward, stop, rm, stopp/rmp,
# rmi. Every step's effect is checked, not only its exit status; the first
# failed check stops the script with the crisp log's tail.
#
# Prints "crictl-e2e: N checks passed" at the end. Tools come from
# _output/bin (hack/deps.sh), images from the loopback registry
# (hack/images.sh), both under their upstream names through mirrors.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${CRISP_BINARY:-$repo/_output/bin/crisp}
subnet=${CRICTL_E2E_SUBNET:-10.212.8.0/24}
image=docker.io/library/busybox:1.36

# shellcheck source=lib/instance.sh
. "$repo/hack/lib/instance.sh"
pf=
cleanup() {
	[ -z "$pf" ] || kill "$pf" 2>/dev/null || true
	instance_stop "$repo/_output/crictl-e2e/crisp.log"
}
trap cleanup EXIT
instance_init crictl-e2e
instance_start crcte0 "$subnet"

checks=0
ok() { checks=$((checks + 1)); echo "ok   $*"; }
fail() {
	echo "FAIL $*" >&2
	echo "--- crisp log (tail) ---" >&2
	tail -n 40 "$work/crisp.log" >&2
	exit 1
}
printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 60\n' "$sock" "$sock" >"$work/crictl.yaml"
crictl() { "$repo/_output/bin/crictl" --config "$work/crictl.yaml" "$@"; }
# expect <what> <want> <got>
expect() { [ "$3" == "$2" ] && ok "$1: $3" || fail "$1: got '$3', want '$2'"; }
# eventually <what> <command...>: retried for up to 20 s.
eventually() {
	local what=$1 i
	shift
	for i in $(seq 1 100); do
		if "$@" >/dev/null 2>&1; then
			ok "$what"
			return
		fi
		sleep 0.2
	done
	fail "$what (20 s)"
}

# --- runtime ---
expect "version: runtime name" crisp "$(crictl version | awk '/^RuntimeName:/ {print $2}')"
# The config as crisp.toml spells it (crisp config, the file's keys).
expect "info: config in file keys" 4h0m0s "$(crictl info -o json | jq -r '.config.streaming.idle_timeout')"
expect "info: NetworkReady" true "$(crictl info -o json | jq -r '.status.conditions[] | select(.type=="NetworkReady") | .status')"

# --- pull ---
crictl pull "$image" >/dev/null
img=$(crictl inspecti -o json "$image")
expect "pull: image keeps its upstream name" "$image" "$(jq -r '.status.repoTags[0]' <<<"$img")"
img_id=$(jq -r '.status.id' <<<"$img")
expect "images: listed by id" "$img_id" "$(crictl images -q --no-trunc | grep -x "$img_id")"

# --- runp ---
mkdir -p "$work/logs"
cat >"$work/pod.json" <<JSON
{
  "metadata": {"name": "e2e", "namespace": "crictl-e2e", "uid": "crictl-e2e-uid", "attempt": 0},
  "hostname": "e2e-host",
  "log_directory": "$work/logs",
  "dns_config": {"servers": ["10.212.8.53"], "searches": ["crictl-e2e.svc.cluster.local"]},
  "labels": {"app": "crictl-e2e"},
  "linux": {"cgroup_parent": "/crisp-crictl-e2e/pod"}
}
JSON
pod=$(crictl runp "$work/pod.json")
podjson=$(crictl inspectp -o json "$pod")
expect "runp: pod ready" SANDBOX_READY "$(jq -r '.status.state' <<<"$podjson")"
ip=$(jq -r '.status.network.ip' <<<"$podjson")
[[ $ip == 10.212.8.* ]] && ok "runp: pod IP $ip in $subnet" || fail "runp: pod IP '$ip' not in $subnet"
expect "pods: listed by label" "$pod" "$(crictl pods -q --no-trunc --label app=crictl-e2e)"

# --- create, start ---
cat >"$work/ctr.json" <<JSON
{
  "metadata": {"name": "web"},
  "image": {"image": "$image"},
  "command": ["sh", "-c", "echo hello-e2e; echo err-e2e >&2; mkdir -p /www; echo page-e2e > /www/index.html; exec httpd -f -p 8080 -h /www"],
  "log_path": "web.log",
  "linux": {"resources": {"memory_limit_in_bytes": 67108864}}
}
JSON
ctr=$(crictl create "$pod" "$work/ctr.json" "$work/pod.json")
expect "create: container created" CONTAINER_CREATED "$(crictl inspect -o json "$ctr" | jq -r '.status.state')"
crictl start "$ctr" >/dev/null
expect "start: container running" CONTAINER_RUNNING "$(crictl inspect -o json "$ctr" | jq -r '.status.state')"

# --- ps ---
expect "ps: the pod's containers" "$ctr" "$(crictl ps -q --no-trunc --pod "$pod")"
expect "ps: name and state" "web CONTAINER_RUNNING" "$(crictl ps -o json --id "$ctr" | jq -r '.containers[0] | .metadata.name + " " + .state')"

# --- logs ---
logged() { crictl logs "$ctr" 2>/dev/null | grep -qx hello-e2e; }
eventually "logs: stdout line" logged
expect "logs: stderr line" err-e2e "$(crictl logs "$ctr" 2>&1 >/dev/null)"
grep -Eq '^[0-9T:.+Z-]+ stdout F hello-e2e$' "$work/logs/web.log" && ok "logs: CRI format on disk" || fail "logs: $work/logs/web.log: $(cat "$work/logs/web.log")"

# --- exec ---
served() { crictl exec "$ctr" cat /www/index.html | grep -qx page-e2e; }
eventually "exec: the container's file" served
expect "exec: hostname from the pod" e2e-host "$(crictl exec "$ctr" hostname)"
expect "exec: resolv.conf from the pod's DNS config" "nameserver 10.212.8.53" "$(crictl exec "$ctr" grep nameserver /etc/resolv.conf)"
# crictl exits 1 on any failed command and names the exit code.
out=$(crictl exec "$ctr" sh -c 'exit 3' 2>&1) && fail "exec: 'exit 3' succeeded"
[[ $out == *"exit code 3"* ]] && ok "exec: exit code 3 reported" || fail "exec: exit 3 gave: $out"
expect "exec -s: sync, memory limit visible" 67108864 "$(crictl exec -s "$ctr" cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || crictl exec -s "$ctr" cat /sys/fs/cgroup/memory.max)"

# --- stats ---
stats=$(crictl stats -o json --id "$ctr")
ws=$(jq -r '.stats[0].memory.workingSetBytes.value // 0' <<<"$stats")
[ "$ws" -gt 0 ] && ok "stats: working set $ws bytes" || fail "stats: $stats"
cpu=$(jq -r '.stats[0].cpu.usageCoreNanoSeconds.value // 0' <<<"$stats")
[ "$cpu" -gt 0 ] && ok "stats: cpu $cpu ns" || fail "stats: $stats"
expect "statsp: the pod" "$pod" "$(crictl statsp -o json --id "$pod" | jq -r '.stats[0].attributes.id')"

# --- port-forward (to 127.0.0.1 only: crictl listens on loopback) ---
crictl port-forward "$pod" :8080 >"$work/pf.out" 2>&1 &
pf=$!
eventually "port-forward: listening" grep -q 'Forwarding from 127.0.0.1:' "$work/pf.out"
port=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$work/pf.out" | head -1)
expect "port-forward: GET through 127.0.0.1:$port" page-e2e "$(curl -sS --max-time 10 "http://127.0.0.1:$port/index.html")"
kill "$pf"
wait "$pf" 2>/dev/null || true
pf=

# --- stop, rm ---
crictl stop --timeout 2 "$ctr" >/dev/null
st=$(crictl inspect -o json "$ctr")
expect "stop: container exited" CONTAINER_EXITED "$(jq -r '.status.state' <<<"$st")"
code=$(jq -r '.status.exitCode' <<<"$st")
[[ $code == 137 || $code == 143 ]] && ok "stop: exit code $code (signal)" || fail "stop: exit code $code"
crictl rm "$ctr" >/dev/null
expect "rm: no container left" "" "$(crictl ps -a -q)"
crictl inspect "$ctr" >/dev/null 2>&1 && fail "rm: inspect still finds $ctr" || ok "rm: inspect says not found"

# --- stopp, rmp ---
crictl stopp "$pod" >/dev/null
expect "stopp: pod not ready" SANDBOX_NOTREADY "$(crictl inspectp -o json "$pod" | jq -r '.status.state')"
crictl rmp "$pod" >/dev/null
expect "rmp: no pod left" "" "$(crictl pods -q)"
expect "rmp: no veth on the bridge" "" "$(ip -o link show master crcte0 2>/dev/null)"
expect "rmp: no pod mount left" "" "$(grep -o " $work/state/[^ ]*" /proc/self/mountinfo | grep -v -e "$work/state/ns\$" -e "$work/state/pods\$" || true)"
[ ! -d /sys/fs/cgroup/memory/crisp-crictl-e2e/pod ] && ok "rmp: pod cgroup removed" || fail "rmp: /sys/fs/cgroup/memory/crisp-crictl-e2e/pod left"

# --- rmi ---
crictl rmi "$image" >/dev/null
expect "rmi: no image left" "" "$(crictl images -q)"

echo "crictl-e2e: $checks checks passed"
