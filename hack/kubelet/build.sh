#!/usr/bin/env bash
# hack/kubelet/build.sh: build the kubelet pinned in hack/kubelet/go.mod into
# _output/bin/kubelet, and the device plugin in deviceplugin/ into
# _output/bin/e2e-deviceplugin, for hack/e2e-kubelet.sh.
#
# kubelet is not a tool of crisp's, so it has its own module here: go.mod
# requires k8s.io/kubernetes and re-points kubernetes' ./staging/src replaces
# to the published k8s.io/* v0.<minor> modules of the same release. To move to
# another release, change the version in both places and run `go mod tidy`
# in this directory.
#
# Like hack/deps.sh, the binary is rebuilt only when its stamp (kubernetes
# version, Go version, hash of go.mod+go.sum) differs from
# _output/bin/.stamps/kubelet. A cold build takes about 15 minutes on 2 cores;
# it runs at a lower priority (nice) so a shared machine stays usable.
#
# Environment:
#   KUBELET_FORCE=1   rebuild even if the stamp matches
set -euo pipefail

DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$DIR/../.." && pwd)
BIN=$ROOT/_output/bin
STAMPS=$BIN/.stamps

log() { echo "kubelet-build: $*" >&2; }

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	export PATH=/usr/local/go/bin:$PATH
fi

mkdir -p "$BIN" "$STAMPS"
# One build per checkout at a time: make test and a developer may both ask.
exec 9>"$BIN/.kubelet.lock"
flock 9

# hack/e2e-kubelet.sh's device plugin (deviceplugin/) speaks kubelet's API,
# so it is built from this module too (seconds once the module's
# dependencies are there), with its own stamp.
dp_stamp="$(go env GOVERSION) src:$(cat "$DIR/go.mod" "$DIR/go.sum" "$DIR"/deviceplugin/*.go | sha256sum | cut -c1-16)"
if [[ -n ${KUBELET_FORCE:-} || ! -x $BIN/e2e-deviceplugin || ! -f $STAMPS/e2e-deviceplugin || "$(<"$STAMPS/e2e-deviceplugin")" != "$dp_stamp" ]]; then
	(cd "$DIR" && CGO_ENABLED=0 go build -trimpath -o "$BIN/.e2e-deviceplugin.tmp" ./deviceplugin)
	mv -f "$BIN/.e2e-deviceplugin.tmp" "$BIN/e2e-deviceplugin"
	echo "$dp_stamp" >"$STAMPS/e2e-deviceplugin"
	log "built e2e-deviceplugin"
fi

k8s=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3; exit }' "$DIR/go.mod")
[[ -n $k8s ]] || { log "error: k8s.io/kubernetes not required in $DIR/go.mod"; exit 1; }
sum=$(cat "$DIR/go.mod" "$DIR/go.sum" | sha256sum | cut -c1-16)
stamp="kubernetes@$k8s $(go env GOVERSION) mod:$sum"
if [[ -z ${KUBELET_FORCE:-} && -x $BIN/kubelet && -f $STAMPS/kubelet && "$(<"$STAMPS/kubelet")" == "$stamp" ]]; then
	log "kubelet up to date ($stamp)"
	exit 0
fi

log "building kubelet ($stamp); a cold build takes about 15 minutes"
start=$SECONDS
tmp=$BIN/.kubelet.tmp.$$
trap 'rm -f "$tmp"' EXIT
major=${k8s#v}; major=${major%%.*}
minor=${k8s#v*.}; minor=${minor%%.*}
# The version variables make kubelet report its release (in logs, /healthz
# and the CRI Version request) instead of v0.0.0-master.
ld="-s -w"
for kv in gitVersion=$k8s gitMajor=$major gitMinor=$minor gitTreeState=clean; do
	ld+=" -X k8s.io/component-base/version.$kv"
done
# CGO_ENABLED=0: kubelet builds without cgo, and the binary then does not depend on
# the C toolchain or libc of the machine it runs on.
(cd "$DIR" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "$ld" -o "$tmp" k8s.io/kubernetes/cmd/kubelet)
mkdir -p "$BIN" "$STAMPS"
mv -f "$tmp" "$BIN/kubelet"
echo "$stamp" >"$STAMPS/kubelet"
log "built kubelet in $((SECONDS - start))s"
