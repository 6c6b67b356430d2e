#!/usr/bin/env bash
# Runs critest against a crisp started here with a fresh root, private socket
# and the loopback registry mirrored for the upstream registries, so critest
# uses upstream image names (no -registry-prefix).
#
#   CRITEST_FOCUS   ginkgo focus regex (default: the whole suite)
#   CRISP_NRI_SOCKET  NRI socket for crisp and critest's NRI specs
#                   (default: a private one in the work directory)
#   CRITEST_PARALLEL, CRITEST_SKIP_FILE, CRITEST_REPORT_DIR: see hack/critest.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${CRISP_BINARY:-$repo/_output/bin/crisp}
registry=${CRISP_TEST_REGISTRY:-127.0.0.1:5000}
# The whole suite; test/critest-skips.txt lists what cannot run here and why.
export CRITEST_FOCUS=${CRITEST_FOCUS:-'\[k8s\.io\]'}

# One run at a time per machine: critest binds host ports 12000-12003 and the
# pod network below has a fixed bridge name.
exec 9>/run/lock/crisp-conformance.lock
flock 9

"$repo/hack/registry.sh" start >/dev/null

work=$(mktemp -d /tmp/crisp-critest-XXXXXX)
# Searchable like /var/lib and /run: pods with their own user namespace reach
# their rootfs below it as a root that is not the node's.
chmod 711 "$work"
mkdir -p "$work/cni"
# A private pod network: critest fetches pod IPs and host ports from the host.
subnet=${CRITEST_POD_SUBNET:-10.212.0.0/22}
bridge=crcri0
cat > "$work/cni/10-critest.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "crisp-critest",
  "plugins": [
    {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$work/ipam", "ranges": [[{"subnet": "$subnet"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
  ]
}
JSON
"$repo/hack/cni-config.sh" firewall-on "$subnet"
for host in docker.io registry.k8s.io k8s.gcr.io gcr.io quay.io public.ecr.aws; do
  printf '[registries.%s]\nmirrors = ["http://%s"]\nskip_upstream = true\n' "\"$host\"" "$registry"
done > "$work/crisp.toml"

# NRI on a private socket, with no pre-installed plugins: critest's NRI specs
# connect their own. Their synchronization spec holds a plugin's Synchronize
# open for 2s, as long as NRI's default request timeout, so allow more.
export CRISP_NRI_SOCKET=${CRISP_NRI_SOCKET:-$work/nri.sock}
"$bin" --config "$work/crisp.toml" --listen "$work/crisp.sock" --root "$work/root" \
  --state "$work/state" --cni-conf-dir "$work/cni" \
  --nri-enable --nri-socket-path "$CRISP_NRI_SOCKET" --nri-plugin-path "$work/nri/plugins" \
  --nri-plugin-config-path "$work/nri/conf.d" --nri-plugin-request-timeout 10s \
  -v=2 --logtostderr=true >"$work/crisp.log" 2>&1 &
pid=$!
cleanup() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  report=${CRITEST_REPORT_DIR:-$repo/_output/critest}
  mkdir -p "$report"
  cp "$work/crisp.log" "$report/crisp.log" 2>/dev/null || true
  grep -o " $work/[^ ]*" /proc/self/mountinfo 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
  "$repo/hack/cni-config.sh" firewall-off "$subnet" || true
  ip link del "$bridge" 2>/dev/null || true
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  [ -S "$work/crisp.sock" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "crisp exited during start-up:"; cat "$work/crisp.log"; exit 1; }
  sleep 0.1
done

CRISP_SOCKET="$work/crisp.sock" "$repo/hack/critest.sh"
