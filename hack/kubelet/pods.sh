# hack/kubelet/pods.sh: the static pods of hack/e2e-kubelet.sh and the
# queries its checks make about them. Sourced after lib.sh.
# shellcheck shell=bash

# --- pods ----------------------------------------------------------------

# write_pod NAME: the manifest, written to a dot-file and renamed so kubelet
# never reads half of it. Records when it was written for the Ready timing.
declare -A written_ms=()
write_pod() {
	local name=$1
	cat >"$MANIFESTS/.$name.yaml"
	mv -f "$MANIFESTS/.$name.yaml" "$MANIFESTS/$name.yaml"
	written_ms[$name]=$(now_ms)
}

# A shell that ends at once on SIGTERM (as PID 1 it has no default handler).
LOOP='trap "exit 0" TERM; while true; do sleep 1; done'

# simple_pod NAME IMAGE COMMAND [LIMITS]: one container, main, running
# COMMAND in sh, labelled e2e=NAME; LIMITS is a YAML flow map ("{memory: 64Mi}").
simple_pod() {
	local name=$1 image=$2 command=$3 limits=${4:-}
	write_pod "$name" < <(
		cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $name, namespace: default, labels: {e2e: $name}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: $image
    imagePullPolicy: IfNotPresent
    command: [sh, -c, '$command']
YAML
		[[ -z $limits ]] || printf '    resources:\n      limits: %s\n' "$limits"
	)
}

single_pod() { # GENERATION
	write_pod single <<YAML
apiVersion: v1
kind: Pod
metadata: {name: single, namespace: default, labels: {e2e: single, gen: "$1"}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: $IMAGE
    imagePullPolicy: IfNotPresent
    env: [{name: GEN, value: "$1"}]
    command: [sh, -c, 'echo "hello from \$GEN"; $LOOP']
YAML
}

probes_pod() {
	write_pod probes <<YAML
apiVersion: v1
kind: Pod
metadata: {name: probes, namespace: default, labels: {e2e: probes}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: web
    image: $IMAGE
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'sleep 2; touch /tmp/ready; echo from-web >/data/web; $LOOP']
    volumeMounts: [{name: data, mountPath: /data}]
    # Periods and timeouts scale: under emulation (the VM lane) an exec
    # takes seconds to set up, and probes that queue behind each other
    # time out and restart a healthy container.
    readinessProbe:
      exec: {command: [cat, /tmp/ready]}
      periodSeconds: $((1 * ${SCALE:-1}))
      timeoutSeconds: $((5 * ${SCALE:-1}))
    livenessProbe:
      exec: {command: [sh, -c, 'kill -0 1']}
      periodSeconds: $((2 * ${SCALE:-1}))
      timeoutSeconds: $((5 * ${SCALE:-1}))
  - name: sidecar
    image: $IMAGE
    imagePullPolicy: IfNotPresent
    command: [sh, -c, '$LOOP']
    volumeMounts: [{name: data, mountPath: /data}]
    # Ready once it sees the other container's file in the shared emptyDir.
    readinessProbe:
      exec: {command: [cat, /data/web]}
      periodSeconds: $((1 * ${SCALE:-1}))
      timeoutSeconds: $((5 * ${SCALE:-1}))
  volumes: [{name: data, emptyDir: {}}]
YAML
}

limited_pod() { simple_pod limited "$IMAGE" "$LOOP" '{memory: 64Mi, cpu: 250m}'; }

# A data-science pod: /dev/shm sized by CRI-O's annotation (64 MiB
# without), rlimits by crisp's; it writes 256 MiB into its /dev/shm.
shm_pod() {
	write_pod shm <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: shm
  namespace: default
  labels: {e2e: shm}
  annotations: {io.kubernetes.cri-o.ShmSize: 2Gi, crisp-runtime.io/ulimits: "nofile=1000:2000"}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: $IMAGE
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=256 && echo shm-filled; $LOOP']
YAML
}

# Limited to 4 huge pages of 2 MiB: hugemap (crisp-test/hugepages, see
# hack/images) maps 4 and fails on 5. The node needs the pages when kubelet
# starts (setup_host reserves HUGEPAGES).
hugepages_pod() {
	simple_pod hugepages "$REGISTRY/crisp-test/hugepages:1" "hugemap 4 | tail -1; hugemap 5 | tail -1; $LOOP" \
		'{hugepages-2Mi: 8Mi, memory: 64Mi}'
}

crasher_pod() {
	write_pod crasher <<YAML
apiVersion: v1
kind: Pod
metadata: {name: crasher, namespace: default, labels: {e2e: crasher}}
spec:
  terminationGracePeriodSeconds: 1
  restartPolicy: Always
  containers:
  - name: crash
    image: $IMAGE
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'echo crashing; exit 3']
YAML
}

# --- queries -------------------------------------------------------------

# sandbox LABEL [GEN]: the id of the ready sandbox of pod e2e=LABEL (exactly
# one), of generation GEN if given.
sandbox() {
	local ids sel=(--label "e2e=$1")
	[[ -n ${2:-} ]] && sel+=(--label "gen=$2")
	ids=$(cri pods "${sel[@]}" --state ready -q)
	[[ -n $ids && $(wc -l <<<"$ids") -eq 1 ]] || return 1
	echo "$ids"
}
# running SANDBOX: "name=id" of its running containers, sorted.
running() { cri ps --pod "$1" --state running -o json | jq -r '.containers[]? | "\(.metadata.name)=\(.id)"' | sort; }
pods_json() { readonly_get /pods; }
# ready LABEL [GEN]: kubelet reports the pod (of generation GEN) Ready with
# every container ready.
ready() {
	pods_json | jq -e --arg l "$1" --arg g "${2:-}" '[.items[]? | select(.metadata.labels.e2e == $l and
		($g == "" or .metadata.labels.gen == $g))] | length == 1 and
		(.[0].status.conditions // [] | any(.type == "Ready" and .status == "True")) and
		(.[0].status.containerStatuses // [] | length > 0 and all(.ready))' >/dev/null
}
restarts() { pods_json | jq -r --arg l "$1" '[.items[]? | select(.metadata.labels.e2e == $l) | .status.containerStatuses[]?.restartCount] | add // 0'; }
# snapshot: every running pod's sandbox and container ids and the monitored
# pids, to compare across daemon restarts.
snapshot() {
	local l s
	for l in single probes limited; do
		s=$(sandbox "$l") || { echo "$l: no ready sandbox"; continue; }
		echo "$l sandbox=$s"
		running "$s" | sed "s/^/$l /"
		cri ps --pod "$s" -a -o json | jq -r --arg l "$l" '.containers[]? | "\($l) \(.metadata.name) attempt=\(.metadata.attempt) \(.state)"' | sort
	done
}

# wait_ready LABEL[:GEN]...: poll until each pod is Ready, record the time
# from its manifest written to Ready.
ready_ms=()
wait_ready() {
	local deadline=$((SECONDS + 90 * ${SCALE:-1})) p l pending=("$@") left
	while ((${#pending[@]})); do
		left=()
		for p in "${pending[@]}"; do
			l=${p%%:*}
			if ready "$l" "$([[ $p == *:* ]] && echo "${p#*:}")"; then
				local ms=$(($(now_ms) - written_ms[$l]))
				ready_ms+=("$p=$ms")
				pass "pod $p Ready ($ms ms after its manifest was written)"
			else
				left+=("$p")
			fi
		done
		pending=("${left[@]}")
		((${#pending[@]})) || break
		if ((SECONDS >= deadline)); then
			fail "pods not Ready within $((90 * ${SCALE:-1}))s: ${pending[*]}" "$(pods_json | jq -c '.items[]? | {name: .metadata.name, status: .status.containerStatuses}')"
			return 0
		fi
		sleep 0.2
	done
}

# pod_name LABEL: the static pod's name (kubelet appends the node name).
pod_name() { pods_json | jq -r --arg l "$1" '.items[]? | select(.metadata.labels.e2e == $l) | .metadata.name' | head -1; }
# container_id SANDBOX NAME: the running container NAME of the sandbox.
container_id() { running "$1" | sed -n "s/^$2=//p"; }
# cgroup_file PID CONTROLLER V1FILE V2FILE: the path of a cgroup file of the
# process, on cgroup v1 (per-controller hierarchy) or v2 (unified).
cgroup_file() {
	local pid=$1 ctl=$2 path
	if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
		path=$(awk -F: '$1 == "0" { print $3 }' "/proc/$pid/cgroup")
		echo "/sys/fs/cgroup$path/$4"
		return
	fi
	path=$(awk -F: -v c="$ctl" '{ n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3 }' "/proc/$pid/cgroup")
	local mnt
	mnt=$(awk -v c="$ctl" '$3 == "cgroup" { n = split($4, o, ","); for (i = 1; i <= n; i++) if (o[i] == c) { print $2; exit } }' /proc/self/mounts)
	echo "$mnt$path/$3"
}
