#!/usr/bin/env bash
# Runs crisp in the foreground with its defaults: socket /run/crisp/crisp.sock,
# root /var/lib/crisp, state /run/crisp, config /etc/crisp/crisp.toml if present.
# When no CNI network is configured it writes the default crisp bridge network,
# and while crisp runs pod traffic is fenced to the pod subnet and this node.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$repo/_output/bin/crisp}
shift || true
conf_dir=${CRISP_CNI_CONF_DIR:-/etc/cni/net.d}
subnet=${CRISP_POD_SUBNET:-10.209.0.0/16}

"$repo/hack/cni-config.sh" "$conf_dir" crisp0 "$subnet"
"$repo/hack/cni-config.sh" firewall-on "$subnet"
trap '"$repo/hack/cni-config.sh" firewall-off "$subnet"' EXIT

crictl=$repo/_output/bin/crictl
[[ -x $crictl ]] || crictl=$(command -v crictl || echo "crictl (make deps builds it into _output/bin)")
echo "crisp: serving on /run/crisp/crisp.sock; try: $crictl --runtime-endpoint unix:///run/crisp/crisp.sock info"
"$bin" --cni-conf-dir "$conf_dir" "$@" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' INT TERM
wait "$pid" || true
wait "$pid" 2>/dev/null || true
