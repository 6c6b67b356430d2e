#!/usr/bin/env bash
# Benchmarks crisp against containerd side by side: starts both on private
# roots, sockets and pod networks (one bridge + subnet each, fenced with a
# FORWARD DROP rule), both with cgroupfs, the loopback registry mirrored for
# the upstream registries, and RuntimeDefault seccomp in every pod and
# container; then runs crisp-bench against both, interleaved per iteration.
# Everything started here is stopped by PID and its state removed on exit.
#
#   BENCH_ARGS   extra crisp-bench flags (e.g. "-iterations 50 -cycles 200")
#   BENCH_OUT    results directory (default _output/bench/results-<time>)
#   BENCH_CRITEST=1  also run critest -benchmark against both (second opinion)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
crisp=${CRISP_BINARY:-$repo/_output/bin/crisp}
bin=$repo/_output/bench/bin
registry=${CRISP_TEST_REGISTRY:-127.0.0.1:5000}
out=${BENCH_OUT:-$repo/_output/bench/results-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

"$repo/hack/bench/install.sh"
"$repo/hack/registry.sh" start >/dev/null
# The data-science images only when a scenario uses them (pull-ds, python):
# a cold build takes minutes (hack/images-datascience.sh).
if [[ ! ${BENCH_ARGS:-} =~ -scenarios ]] || [[ ${BENCH_ARGS} =~ -scenarios[=\ ]+[^\ ]*(pull-ds|python) ]]; then
	"$repo/hack/images-datascience.sh"
fi
(cd "$repo" && go build -o "$repo/_output/bin/crisp-bench" ./cmd/crisp-bench)
# The smallfile scenario binds this into the containers: static, so that it
# runs on any image.
(cd "$repo" && CGO_ENABLED=0 go build -o "$repo/_output/bin/crisp-bench-static" ./cmd/crisp-bench)

work=$(mktemp -d /tmp/crisp-bench-XXXXXX)
chmod 711 "$work"
crisp_subnet=10.214.0.0/22 crisp_bridge=crbench0
ctrd_subnet=10.214.4.0/22 ctrd_bridge=crbench1
pids=()

conflist() { # <dir> <name> <bridge> <subnet>
	"$repo/hack/cni-config.sh" test-network "$1" "$2" "$3" "$4" "$work/ipam-$2"
}

cleanup() {
	set +e
	local pid
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
	# Pods left behind by an aborted run, by the PIDs the runtimes recorded
	# under our work dir: containerd's shim.pid files, crisp's monitor and
	# init pids, and whatever is still in the benchmark's own cgroups.
	local recorded
	recorded=$(
		find "$work" -name shim.pid -exec cat {} + 2>/dev/null
		find "$work" -name status.json -exec grep -ho '"\(monitor\|init\)_pid": *[0-9]*' {} + 2>/dev/null | grep -o '[0-9]*$'
		cat /sys/fs/cgroup/*/crisp-bench-*/cgroup.procs /sys/fs/cgroup/*/crisp-bench-*/*/cgroup.procs \
			/sys/fs/cgroup/*/crisp-bench-*/*/*/cgroup.procs 2>/dev/null
	)
	for pid in $recorded; do
		[[ $pid == "$$" ]] || kill -KILL "$pid" 2>/dev/null
	done
	grep -o " $work/[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
	cp "$work"/*.log "$out/" 2>/dev/null
	rm -rf "$work" /tmp/crisp-bench-logs
	for cg in /sys/fs/cgroup/*/crisp-bench-* /sys/fs/cgroup/crisp-bench-*; do
		[[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	"$repo/hack/cni-config.sh" firewall-off "$crisp_subnet"
	"$repo/hack/cni-config.sh" firewall-off "$ctrd_subnet"
	ip link del "$crisp_bridge" 2>/dev/null
	ip link del "$ctrd_bridge" 2>/dev/null
}
trap cleanup EXIT

wait_socket() { # <socket> <pid> <log>
	for _ in $(seq 1 300); do
		[[ -S $1 ]] && return 0
		kill -0 "$2" 2>/dev/null || { echo "bench: daemon exited during start-up:" >&2; tail -30 "$3" >&2; exit 1; }
		sleep 0.1
	done
	echo "bench: $1 did not appear" >&2
	exit 1
}

"$repo/hack/cni-config.sh" firewall-on "$crisp_subnet"
"$repo/hack/cni-config.sh" firewall-on "$ctrd_subnet"

# crisp, at -v=4: its "Phases" lines (the steps of each start-path RPC) are
# the benchmark's phase table (crisp-bench -phase-log).
conflist "$work/crisp-cni" crisp-bench "$crisp_bridge" "$crisp_subnet"
for host in docker.io registry.k8s.io gcr.io public.ecr.aws; do
	printf '[registries.%s]\nmirrors = ["http://%s"]\nskip_upstream = true\n' "\"$host\"" "$registry"
done >"$work/crisp.toml"
"$crisp" --config "$work/crisp.toml" --listen "$work/crisp.sock" --root "$work/crisp-root" \
	--state "$work/crisp-state" --cni-conf-dir "$work/crisp-cni" --cgroup-driver cgroupfs \
	--logtostderr=true -v=4 >"$work/crisp.log" 2>&1 &
crisp_pid=$!
pids+=("$crisp_pid")

# containerd
conflist "$work/containerd-cni" containerd-bench "$ctrd_bridge" "$ctrd_subnet"
for host in docker.io registry.k8s.io gcr.io public.ecr.aws; do
	mkdir -p "$work/certs.d/$host"
	printf 'server = "https://%s"\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$host" "$registry" \
		>"$work/certs.d/$host/hosts.toml"
done
mkdir -p "$work/certs.d/$registry"
printf 'server = "http://%s"\n' "$registry" >"$work/certs.d/$registry/hosts.toml"
cat >"$work/containerd.toml" <<TOML
version = 3
root = "$work/containerd-root"
state = "$work/containerd-state"
[grpc]
  address = "$work/containerd.sock"
[ttrpc]
  address = "$work/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$work/containerd-opt"
[plugins."io.containerd.nri.v1.nri"]
  disable = true
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "registry.k8s.io/pause:3.10.1"
[plugins."io.containerd.cri.v1.images".registry]
  config_path = "$work/certs.d"
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$work/containerd-cni"
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$bin/runc"
        SystemdCgroup = false
TOML
PATH=$bin:$PATH "$bin/containerd" --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
ctrd_pid=$!
pids+=("$ctrd_pid")

wait_socket "$work/crisp.sock" "$crisp_pid" "$work/crisp.log"
wait_socket "$work/containerd.sock" "$ctrd_pid" "$work/containerd.log"
echo "bench: crisp pid $crisp_pid, containerd pid $ctrd_pid ($(cat "$bin/.stamp")), work dir $work" >&2

# shellcheck disable=SC2086
"$repo/_output/bin/crisp-bench" \
	-endpoint crisp="unix://$work/crisp.sock" -endpoint containerd="unix://$work/containerd.sock" \
	-pid crisp="$crisp_pid" -pid containerd="$ctrd_pid" \
	-subnet crisp="$crisp_subnet" -subnet containerd="$ctrd_subnet" \
	-exe containerd="$bin/" -phase-log crisp="$work/crisp.log" \
	-cgroup-parent /crisp-bench -log-dir "$work/logs" \
	-smallfile-binary "$repo/_output/bin/crisp-bench-static" -smallfile-host-dir "$work/smallfile-host" \
	-json "$out/results.json" -png "$out/latency.png" ${BENCH_ARGS:-} | tee "$out/table.txt"

# The cold-pull scenario removed the big image after every pull: its layers
# must be gone from both stores, or the pulls were not cold.
# crisp deletes a removed image's files in the background, so du can race
# with that deletion (a file gone between readdir and stat makes it exit 1):
# what it prints is the point, not its status.
{ du -sh "$work/crisp-root" "$work/containerd-root/io.containerd.content.v1.content" \
	"$work/containerd-root/io.containerd.snapshotter.v1.overlayfs" 2>/dev/null || true; } | tee -a "$out/table.txt"

# critest's own benchmarks as a second opinion; their images come from
# public.ecr.aws, mirrored to the loopback registry for both runtimes.
if [[ ${BENCH_CRITEST:-0} == 1 ]]; then
	cat >"$work/critest-bench.yaml" <<YAML
containersNumber: 20
containersNumberParallel: 1
podsNumber: 20
podsNumberParallel: 1
imagesNumber: 10
imagesNumberParallel: 1
containerBenchmarkTimeoutSeconds: 60
podBenchmarkTimeoutSeconds: 60
imageBenchmarkTimeoutSeconds: 60
podContainerStartBenchmarkTimeoutSeconds: 60
YAML
	for rt in crisp containerd; do
		mkdir -p "$out/critest-$rt"
		"$repo/_output/bin/critest" -benchmark -runtime-endpoint "unix://$work/$rt.sock" \
			-benchmarking-params-file "$work/critest-bench.yaml" \
			-benchmarking-output-dir "$out/critest-$rt" >"$out/critest-$rt/critest.log" 2>&1 ||
			echo "bench: critest -benchmark against $rt failed, see $out/critest-$rt/critest.log" >&2
	done
	"$repo/_output/bin/crisp-bench" -critest-summary "$out/critest-crisp,$out/critest-containerd" | tee -a "$out/table.txt"
fi
echo "bench: results in $out" >&2
