#!/usr/bin/env bash
# Builds the peer runtime for the benchmarks into _output/bench/bin:
# containerd and containerd-shim-runc-v2 from the Go module proxy, and runc
# with seccomp. `go install pkg@version` builds each from its own go.mod, so
# crisp's go.mod never sees containerd. A stamp file names the versions; a
# rerun with the same versions builds nothing. If the build fails, Debian's
# containerd and runc are installed instead and linked into the same place
# (BENCH_PEER in the stamp says which).
#
#   CONTAINERD_VERSION (default v2.4.2), RUNC_VERSION (default v1.5.2)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
containerd_version=${CONTAINERD_VERSION:-v2.4.2}
runc_version=${RUNC_VERSION:-v1.5.2}
bin=$repo/_output/bench/bin
stamp="containerd $containerd_version runc $runc_version"
if [[ -f $bin/.stamp && $(cat "$bin/.stamp") == "$stamp"* ]]; then
	exit 0
fi
mkdir -p "$bin"
rm -f "$bin/.stamp"
echo "bench: building containerd $containerd_version and runc $runc_version (a few minutes, once)" >&2
if GOBIN=$bin CGO_ENABLED=1 GOFLAGS=-mod=mod go install -tags no_btrfs -ldflags '-s -w' \
	"github.com/containerd/containerd/v2/cmd/containerd@$containerd_version" \
	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$containerd_version" &&
	GOBIN=$bin CGO_ENABLED=1 go install -tags seccomp -ldflags '-s -w' \
		"github.com/opencontainers/runc@$runc_version"; then
	echo "$stamp (built from the Go module proxy)" >"$bin/.stamp"
	exit 0
fi
echo "bench: build failed; falling back to Debian's containerd and runc" >&2
apt-get install -y containerd runc >/dev/null
for b in containerd containerd-shim-runc-v2 runc; do
	ln -sf "$(command -v "$b")" "$bin/$b"
done
echo "$stamp (Debian packages: $(dpkg-query -W -f '${Version}' containerd) / $(dpkg-query -W -f '${Version}' runc))" >"$bin/.stamp"
