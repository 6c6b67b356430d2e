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
# The whole suite; test/critest-skips.txt lists what cannot run here and why.
export CRITEST_FOCUS=${CRITEST_FOCUS:-'\[k8s\.io\]'}

# One run at a time per machine: critest binds host ports 12000-12003 and the
# pod network below has a fixed bridge name.
exec 9>/run/lock/crisp-conformance.lock
flock 9

# shellcheck source=lib/instance.sh
. "$repo/hack/lib/instance.sh"
# critest fetches pod IPs and host ports from the host.
subnet=${CRITEST_POD_SUBNET:-10.212.0.0/22}
report=${CRITEST_REPORT_DIR:-$repo/_output/critest}
trap 'instance_stop "$report/crisp.log"' EXIT
instance_init critest
# NRI on a private socket, with no pre-installed plugins: critest's NRI specs
# connect their own. NRI timeouts are crisp's defaults.
export CRISP_NRI_SOCKET=${CRISP_NRI_SOCKET:-$work/nri.sock}
instance_start crcri0 "$subnet" \
  --nri-enable --nri-socket-path "$CRISP_NRI_SOCKET" --nri-plugin-path "$work/nri/plugins" \
  --nri-plugin-config-path "$work/nri/conf.d"

CRISP_SOCKET="$sock" "$repo/hack/critest.sh"
