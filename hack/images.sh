#!/usr/bin/env bash
# Build every test image (critest v1.37.0's images + crisp-test/*) and push
# them to the local registry on 127.0.0.1:5000, starting it if needed.
# Idempotent: inputs (.debs, compiled helpers, layers) are cached in
# _output/cache and unchanged images are not re-pushed.
#
#   hack/images.sh            build + push, print a one-line summary
#   hack/images.sh --list     also print "ref  digest  mediaType  description"
#   hack/images.sh -v         verbose
#
# Environment: IMAGES_CACHE (default _output/cache), REGISTRY_ADDR (default
# 127.0.0.1:5000); see hack/registry.sh for the registry's own settings.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CACHE="${IMAGES_CACHE:-$ROOT/_output/cache}"
ADDR="${REGISTRY_ADDR:-${CRISP_TEST_REGISTRY:-127.0.0.1:5000}}"
BIN="$ROOT/_output/bin/testimages"

apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq "$@" >/dev/null 2>&1 || {
		apt-get update -qq >/dev/null
		apt-get install -y -qq "$@" >/dev/null
	}
}

# Host tools: dpkg-deb and apt-get (Debian), gcc + static libc for the small
# C helpers (pause, nnp, pgrep, ipcs), curl for hack/registry.sh.
need=()
command -v gcc >/dev/null 2>&1 || need+=(gcc)
[[ -e /usr/lib/x86_64-linux-gnu/libc.a ]] || need+=(libc6-dev)
command -v curl >/dev/null 2>&1 || need+=(curl)
if ((${#need[@]})); then
	apt_install "${need[@]}"
fi

hack/registry.sh start >/dev/null

if [[ ! -x "$BIN" ]] || [[ -n "$(find hack/cmd/testimages go.mod go.sum -newer "$BIN" -print -quit 2>/dev/null)" ]]; then
	mkdir -p "$(dirname "$BIN")"
	go build -o "$BIN" ./hack/cmd/testimages
fi

exec "$BIN" --registry "$ADDR" --cache "$CACHE" "$@"
