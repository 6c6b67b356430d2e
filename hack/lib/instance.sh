# shellcheck shell=bash
# hack/lib/instance.sh: a throw-away crisp for a test script, sourced.
#
#   instance_init <name>
#       Creates the work directory $work (/tmp/crisp-<name>-*), so that
#       flags can point into it.
#   instance_start <bridge> <subnet> [crisp flags...]
#       Starts crisp on $work (socket $work/crisp.sock, root, state, log
#       $work/crisp.log), with the loopback registry mirrored
#       for the upstream registries (images keep their upstream names) and a
#       private CNI bridge network on <subnet>, fenced so pod traffic stays
#       on the node. Sets $work, $sock, $pid; waits for the socket.
#   instance_stop [log copy]
#       Removes every pod left (a failed test may leave some: crisp rightly
#       keeps containers running across its own shutdown), SIGTERM to crisp
#       (by PID), keeps its log at <log copy> if given,
#       unmounts and removes the work directory, the fence rule and the
#       bridge. Safe to call twice.
#
# Needs $repo (the repository root) and $bin (the crisp binary).
# CRISP_CGROUP_DRIVER (cgroupfs|systemd), if set, is crisp's --cgroup-driver.

instance_init() {
	instance_name=$1
	work=$(mktemp -d "/tmp/crisp-$instance_name-XXXXXX")
	# Searchable like /var/lib and /run: pods with their own user namespace
	# reach their rootfs below it as a root that is not the node's.
	chmod 711 "$work"
}

instance_start() {
	instance_bridge=$1 instance_subnet=$2
	shift 2
	local name=$instance_name
	local registry=${CRISP_TEST_REGISTRY:-127.0.0.1:5000}
	"$repo/hack/registry.sh" start >/dev/null
	mkdir -p "$work/cni"
	"$repo/hack/cni-config.sh" test-network "$work/cni" "crisp-$name" "$instance_bridge" "$instance_subnet" "$work/ipam"
	"$repo/hack/cni-config.sh" firewall-on "$instance_subnet"
	local host
	for host in docker.io registry.k8s.io k8s.gcr.io gcr.io quay.io public.ecr.aws; do
		printf '[registries.%s]\nmirrors = ["http://%s"]\nskip_upstream = true\n' "\"$host\"" "$registry"
	done >"$work/crisp.toml"
	sock=$work/crisp.sock
	# The VM lane (hack/vm) runs every suite with one cgroup driver.
	local driver=()
	[ -z "${CRISP_CGROUP_DRIVER:-}" ] || driver=(--cgroup-driver "$CRISP_CGROUP_DRIVER")
	"$bin" --config "$work/crisp.toml" --listen "$sock" --root "$work/root" \
		--state "$work/state" --cni-conf-dir "$work/cni" "${driver[@]}" "$@" \
		-v=2 --logtostderr=true >"$work/crisp.log" 2>&1 &
	pid=$!
	local _
	for _ in $(seq 1 100); do
		[ -S "$sock" ] && return 0
		kill -0 "$pid" 2>/dev/null || { echo "crisp exited during start-up:"; cat "$work/crisp.log"; return 1; }
		sleep 0.1
	done
	echo "crisp did not create $sock in 10s:"
	cat "$work/crisp.log"
	return 1
}

instance_stop() {
	[ -n "${work:-}" ] || return 0
	if [ -n "${pid:-}" ]; then
		if kill -0 "$pid" 2>/dev/null && [ -S "$work/crisp.sock" ]; then
			"$repo/_output/bin/crictl" --runtime-endpoint "unix://$work/crisp.sock" --timeout 60s \
				rmp --all --force >/dev/null 2>&1 || echo "instance: could not remove the pods left in $work" >&2
		fi
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	if [ -n "${1:-}" ]; then
		mkdir -p "$(dirname "$1")"
		cp "$work/crisp.log" "$1" 2>/dev/null || true
	fi
	grep -o " $work/[^ ]*" /proc/self/mountinfo 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	rm -rf "$work"
	if [ -n "${instance_subnet:-}" ]; then
		"$repo/hack/cni-config.sh" firewall-off "$instance_subnet" || true
		ip link del "$instance_bridge" 2>/dev/null || true
	fi
	work=
}
