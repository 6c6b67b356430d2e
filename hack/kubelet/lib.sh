# hack/kubelet/lib.sh: the environment of hack/e2e-kubelet.sh: a crisp and a
# standalone kubelet on private roots, sockets, ports, pod network and cgroup
# root, and the host state kubelet touches, saved before and restored after.
# Sourced; expects ROOT, BIN and WORK to be set.
# shellcheck shell=bash

SUBNET=${E2E_KUBELET_SUBNET:-10.213.0.0/24}
BRIDGE=crkub0
# The cgroup driver of kubelet and crisp (CRISP_CGROUP_DRIVER, as the VM
# lane sets it): cgroupfs or systemd.
DRIVER=${CRISP_CGROUP_DRIVER:-cgroupfs}
# cgroupfs: kubelet's cgroupRoot; kubelet creates kubepods/... below it.
CGROOT=crisp-e2e-kubelet
# systemd: kubelet keeps its default cgroupRoot (the root slice), as on a
# node, and makes kubepods.slice, kubepods-<qos>.slice and
# kubepods-<qos>-pod<uid>.slice through systemd; crisp makes container
# scopes in the pod slices. (kubelet takes a custom cgroupRoot in cgroupfs
# form and would name every slice after it.)
KUBEPODS_SLICE=kubepods.slice
# Not kubelet's default ports, so a kubelet someone runs by hand can stay.
HEALTHZ_PORT=10348
KUBELET_PORT=10350
READONLY_PORT=10355
SOCK=$WORK/crisp.sock
MANIFESTS=$WORK/manifests
# kubelet sets these at start-up (vm.overcommit_memory=1, kernel.panic=10, ...).
# 2 MiB pages reserved for the hugepages pod (hack/kubelet/pods.sh).
HUGEPAGES=8
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
# kubelet creates legacy symlinks to container logs here, whatever its roots.
CONTAINER_LOGS=/var/log/containers

crisp_pid=
kubelet_pid=
declare -A saved_sysctl=()
created_logs_dir=
created_cgroups=()
kube_chains_before=

log() { echo "e2e-kubelet: $*" >&2; }
die() { log "error: $*"; exit 1; }

cri() { "$BIN/crictl" --config "$WORK/crictl.yaml" "$@"; }
readonly_get() { curl -sf --max-time 5 "http://127.0.0.1:$READONLY_PORT$1"; }
# kubelet_get PATH: kubelet's main port (self-signed TLS, anonymous allowed)
# serves what the read-only port does not, e.g. /containerLogs.
kubelet_get() { curl -sfk --max-time 5 "https://127.0.0.1:$KUBELET_PORT$1"; }
healthz() { [[ $(curl -sf --max-time 2 "http://127.0.0.1:$HEALTHZ_PORT/healthz" 2>/dev/null) == ok ]]; }
now_ms() { date +%s%3N; }

# KUBE-* chains only: on a fresh node (the VM lane's guest) the tables
# themselves appear during the run (CNI), and before it none prints at all.
kube_chains() { iptables-save 2>/dev/null | { grep -E '^:KUBE-' || true; } | cut -d' ' -f1 | tr '\n' ' '; }

# cgroup_hierarchies: the mount points of every cgroup hierarchy (v1 ones
# including name=systemd, and the v2 one): kubelet's cgroupfs manager wants
# cgroupRoot in all of them.
cgroup_hierarchies() { awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts | sort -u; }

setup_host() {
	local s d
	case $DRIVER in
	cgroupfs) ;;
	systemd)
		[[ -f /sys/fs/cgroup/cgroup.controllers && -d /run/systemd/system ]] ||
			die "the systemd cgroup driver wants cgroup v2 with systemd running (the VM lane's guest)"
		;;
	*) die "CRISP_CGROUP_DRIVER must be cgroupfs or systemd, not $DRIVER" ;;
	esac
	for s in "${SYSCTLS[@]}"; do
		saved_sysctl[$s]=$(sysctl -n "$s")
	done
	# kubelet admits the hugepages pod only if the node has the pages when
	# it starts; given back with the sysctls.
	local huge
	huge=$(sysctl -n vm.nr_hugepages)
	saved_sysctl[vm.nr_hugepages]=$huge
	sysctl -qw "vm.nr_hugepages=$((huge + HUGEPAGES))"
	(($(sysctl -n vm.nr_hugepages) >= huge + HUGEPAGES)) || die "the kernel gave fewer than $HUGEPAGES more huge pages"
	[[ -d $CONTAINER_LOGS ]] || created_logs_dir=1
	# shellcheck disable=SC2034 # compared by hack/e2e-kubelet.sh
	kube_chains_before=$(kube_chains)
	if [[ $DRIVER == systemd ]]; then
		# Another kubelet's pods would be this run's leftovers.
		[[ -d /sys/fs/cgroup/$KUBEPODS_SLICE ]] &&
			die "/sys/fs/cgroup/$KUBEPODS_SLICE exists: another kubelet or a leftover; stop it first (systemctl stop $KUBEPODS_SLICE)"
		created_cgroups+=("/sys/fs/cgroup/$KUBEPODS_SLICE")
	fi
	for d in $(cgroup_hierarchies); do
		[[ $DRIVER == cgroupfs ]] || break
		[[ -d $d/$CGROOT ]] && die "$d/$CGROOT exists: another e2e-kubelet run or a leftover; remove it first"
		# cgroup v2: kubelet's cgroupfs driver wants every controller in its
		# root; on a fresh systemd node (the VM lane) the root delegates only
		# some (memory, pids, io) until a container start enabled the rest.
		if [[ -f $d/cgroup.controllers ]]; then
			for c in $(<"$d/cgroup.controllers"); do echo "+$c" >"$d/cgroup.subtree_control" || true; done
		fi
		mkdir "$d/$CGROOT"
		created_cgroups+=("$d/$CGROOT")
	done
	mkdir -p "$WORK/cni" "$MANIFESTS" "$WORK/kubelet" "$WORK/pod-logs"
	# crictl's RPC deadline scales like every wait: under emulation on a
	# busy machine an exec takes more than 10 s to set up.
	printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: %d\n' "$SOCK" "$SOCK" $((10 * ${SCALE:-1})) >"$WORK/crictl.yaml"
	"$ROOT/hack/cni-config.sh" test-network "$WORK/cni" crisp-e2e-kubelet "$BRIDGE" "$SUBNET" "$WORK/ipam"
	"$ROOT/hack/cni-config.sh" firewall-on "$SUBNET"
	# Pods pull upstream names; crisp serves them from the loopback registry.
	local host
	for host in docker.io registry.k8s.io k8s.gcr.io gcr.io quay.io; do
		printf '[registries.%s]\nmirrors = ["http://%s"]\nskip_upstream = true\n' "\"$host\"" "$REGISTRY"
	done >"$WORK/crisp.toml"
	write_kubelet_config
}

# write_kubelet_config [FEATURE=BOOL...]: feature gates to set.
# shellcheck disable=SC2120 # setup_host writes the defaults, a restart passes gates
write_kubelet_config() {
	local gates="" g cgroups
	for g in "$@"; do gates+="${gates:+, }${g%%=*}: ${g#*=}"; done
	cgroups="cgroupDriver: $DRIVER"
	[[ $DRIVER == systemd ]] || cgroups+=$'\n'"cgroupRoot: /$CGROOT"
	# kubelet refuses cgroup v1 unless told; on v2 its default stays.
	[[ -f /sys/fs/cgroup/cgroup.controllers ]] || cgroups+=$'\n'"failCgroupV1: false"
	cat >"$WORK/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Standalone: no API server, pods come from files only.
staticPodPath: $MANIFESTS
fileCheckFrequency: 1s
syncFrequency: 10s
registerNode: false
containerRuntimeEndpoint: unix://$SOCK
imageServiceEndpoint: unix://$SOCK
podLogsDir: $WORK/pod-logs
$cgroups
failSwapOn: false
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: $READONLY_PORT
healthzBindAddress: 127.0.0.1
healthzPort: $HEALTHZ_PORT
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
# The host's iptables belong to the host: kubelet adds no KUBE-* chains.
makeIPTablesUtilChains: false
# A shared test machine is always short of something: evict nothing.
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# The crash-loop check wants several restarts in seconds, not minutes.
crashLoopBackOff: {maxContainerRestartPeriod: 2s}
featureGates: {$gates}
YAML
}

start_crisp() {
	rm -f "$SOCK"
	"$BIN/crisp" --config "$WORK/crisp.toml" --listen "$SOCK" --root "$WORK/root" \
		--state "$WORK/state" --cni-conf-dir "$WORK/cni" --cgroup-driver "$DRIVER" -v=2 --logtostderr=true >>"$WORK/crisp.log" 2>&1 &
	crisp_pid=$!
	for _ in $(seq 1 $((150 * ${SCALE:-1}))); do
		[[ -S $SOCK ]] && cri version >/dev/null 2>&1 && return 0
		kill -0 "$crisp_pid" 2>/dev/null || { tail -20 "$WORK/crisp.log" >&2; die "crisp exited during start-up"; }
		sleep 0.2
	done
	die "crisp did not answer on $SOCK within $((30 * ${SCALE:-1}))s"
}

start_kubelet() {
	"$BIN/kubelet" --config "$WORK/kubelet.yaml" --root-dir "$WORK/kubelet" --v=2 >>"$WORK/kubelet.log" 2>&1 &
	kubelet_pid=$!
	for _ in $(seq 1 $((300 * ${SCALE:-1}))); do
		healthz && return 0
		kill -0 "$kubelet_pid" 2>/dev/null || { grep -E '^[EF][0-9]{4}' "$WORK/kubelet.log" | tail -20 >&2; die "kubelet exited during start-up"; }
		sleep 0.2
	done
	die "kubelet healthz did not answer within $((60 * ${SCALE:-1}))s"
}

# stop_pid PID NAME: SIGTERM, then SIGKILL after 20s (scaled).
stop_pid() {
	local pid=$1 name=$2
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 $((100 * ${SCALE:-1}))); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
		sleep 0.2
	done
	log "$name ($pid) ignored SIGTERM for $((20 * ${SCALE:-1}))s; killing it"
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
stop_kubelet() { stop_pid "$kubelet_pid" kubelet; kubelet_pid=; }
stop_crisp() { stop_pid "$crisp_pid" crisp; crisp_pid=; }

# monitor_pids: crisp-monitor processes of this run (their arguments name a
# bundle under our crisp root).
monitor_pids() { ps -eo pid=,args= | awk -v r="$WORK/root/" 'index($0, r) && $2 ~ /crisp-monitor/ { print $1 }'; }
# our_mounts: mount points under crisp's root and state, but not the shared
# mount points <state>/ns and <state>/pods that crisp keeps while it runs.
our_mounts() {
	awk '{ print $5 }' /proc/self/mountinfo | grep -F "$WORK/" |
		grep -vxF -e "$WORK/state/ns" -e "$WORK/state/pods" | grep -v "^$WORK/kubelet" || true
}
# pod_cgroups: pod cgroups (cgroupfs: pod<uid>, systemd: *-pod<uid>.slice)
# and container scopes left under kubelet's cgroup root.
pod_cgroups() {
	local d
	for d in "${created_cgroups[@]}"; do
		[[ -d $d ]] && find "$d" -mindepth 1 -type d \( -name 'pod*' -o -name '*-pod*.slice' -o -name '*.scope' \)
	done
	return 0
}
# remove_cgroup_root: remove kubelet's cgroup root once kubelet and crisp
# are stopped; a cgroup with processes in it stays. Under systemd kubelet's
# slices are units: stopping kubepods.slice stops the slices in it.
remove_cgroup_root() {
	local d
	if [[ $DRIVER == systemd ]]; then
		systemctl stop "$KUBEPODS_SLICE" 2>/dev/null
		return 0
	fi
	for d in "${created_cgroups[@]}"; do
		find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
	return 0
}
bridge_veths() { ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{ print $2 }'; }

# teardown: stop everything this run started, by PID, and undo what it and
# kubelet changed on the host, even after a failed check. The daemons' logs
# are kept in _output/e2e-kubelet/.
teardown() {
	local d pid s
	set +e
	stop_kubelet
	if [[ -n $crisp_pid ]]; then
		cri rmp -af >/dev/null 2>&1
		stop_crisp
	fi
	for pid in $(monitor_pids); do
		log "killing leftover crisp-monitor $pid"
		kill -KILL "$pid" 2>/dev/null
	done
	remove_cgroup_root
	for d in "${created_cgroups[@]}"; do
		[[ -d $d ]] && log "cannot remove cgroup $d: $(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | tr '\n' ' ')"
	done
	for s in "${!saved_sysctl[@]}"; do
		sysctl -qw "$s=${saved_sysctl[$s]}" >/dev/null
	done
	if [[ -d $CONTAINER_LOGS ]]; then
		# Symlinks kubelet left into this run's log directory.
		find "$CONTAINER_LOGS" -maxdepth 1 -type l -lname "$WORK/*" -delete
		[[ -n $created_logs_dir ]] && rmdir "$CONTAINER_LOGS" 2>/dev/null
	fi
	mkdir -p "$ROOT/_output/e2e-kubelet"
	cp "$WORK/kubelet.log" "$WORK/crisp.log" "$ROOT/_output/e2e-kubelet/" 2>/dev/null
	grep -o " $WORK/[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
	rm -rf "$WORK"
	"$ROOT/hack/cni-config.sh" firewall-off "$SUBNET"
	ip link del "$BRIDGE" 2>/dev/null
	set -e
}
