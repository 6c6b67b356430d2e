#!/usr/bin/env bash
# hack/deps.sh [all|run]: install everything crisp needs to build, run and
# test it (all, the default), or only to build and run it (run: `make run`,
# the build and run packages of step 1, no Go tools).
#
#   1. Debian packages (apt-get), only the missing ones; `apt-get update` runs
#      only when something is missing.
#   2. Go tools pinned in hack/tools/go.mod, built into _output/bin:
#        crictl, critest       sigs.k8s.io/cri-tools
#        ginkgo                github.com/onsi/ginkgo/v2 (critest -parallel=N>1 runs it)
#        crane                 github.com/google/go-containerregistry
#        junit-summary         hack/tools/junitsummary (used by hack/critest.sh)
#      A tool is rebuilt only when its recorded stamp (tool version, Go
#      version, hash of hack/tools/go.mod+go.sum and, for junit-summary, of its
#      source) differs from _output/bin/.stamps/<tool>.
#
# Idempotent; a second run takes about a second. A cold build of the tools
# (empty Go build and module caches) takes about 2.5 minutes on 2 cores,
# most of it crictl (~90s) and critest (~40s).
#
# Environment:
#   DEPS_SKIP_APT=1    do not look at Debian packages
#   DEPS_SKIP_TOOLS=1  do not build the Go tools
#   DEPS_FORCE=1       rebuild the Go tools even if their stamps match
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=$ROOT/hack/tools
BIN=$ROOT/_output/bin
STAMPS=$BIN/.stamps

log() { echo "deps: $*" >&2; }
die() { echo "deps: error: $*" >&2; exit 1; }

# Debian packages crisp needs to be built and run.
RUN_PACKAGES=(
	# build (cgo: libseccomp via pkg-config; ISA-L's igzip_lib.h, whose
	# libisal2 crisp loads at run time when present); ca-certificates for
	# the Go module proxy
	gcc libc6-dev pkg-config libseccomp-dev libisal-dev ca-certificates
	# run: CNI plugins (/usr/lib/cni), hostport/masquerade rules, netns and
	# namespace tools
	containernetworking-plugins iptables iproute2 util-linux procps
)
# ... and to be tested: critest's HostIpc specs run ipcmk/ipcs (util-linux,
# above); the scripts use curl and jq.
PACKAGES=("${RUN_PACKAGES[@]}" curl jq)

mode=${1:-all}
case $mode in
all) ;;
run)
	PACKAGES=("${RUN_PACKAGES[@]}")
	DEPS_SKIP_TOOLS=1
	;;
*) die "usage: $0 [all|run]" ;;
esac

SUDO=
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null || die "not root and no sudo: cannot install packages"
	SUDO=sudo
fi

# apt-get waits up to 10 minutes for the dpkg lock held by another apt/dpkg
# process instead of failing at once.
APT_OPTS=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3 -o Dpkg::Use-Pty=0)

apt_retry() {
	# `apt-get update` does not wait for the lists lock on every apt version;
	# retry while another process holds it.
	local i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" "$@"; then
			return 0
		fi
		log "apt-get $1 failed (attempt $i), retrying in 15s (another apt may hold the lock)"
		sleep 15
	done
	return 1
}

install_packages() {
	local missing=() pkg status
	declare -A have=()
	# One dpkg-query for all packages; unknown packages are just not printed.
	while read -r pkg status; do
		[[ $status == installed ]] && have[$pkg]=1
	done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)
	for pkg in "${PACKAGES[@]}"; do
		[[ -n ${have[$pkg]:-} ]] || missing+=("$pkg")
	done
	if [[ ${#missing[@]} -eq 0 ]]; then
		log "Debian packages: all ${#PACKAGES[@]} present"
		return 0
	fi
	log "installing Debian packages: ${missing[*]}"
	apt_retry update -q
	apt_retry install -y -q --no-install-recommends "${missing[@]}"
	[[ -x /usr/lib/cni/bridge ]] || die "containernetworking-plugins installed but /usr/lib/cni/bridge is missing"
}

find_go() {
	if ! command -v go >/dev/null; then
		if [[ -x /usr/local/go/bin/go ]]; then
			export PATH=/usr/local/go/bin:$PATH
		else
			die "go not found (expected in PATH or /usr/local/go/bin)"
		fi
	fi
}

# module_version MODULE: the version hack/tools/go.mod requires.
module_version() {
	local v
	v=$(awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$TOOLS_DIR/go.mod")
	[[ -n $v ]] || die "$1 is not required in $TOOLS_DIR/go.mod"
	echo "$v"
}

# build_tool NAME STAMP build|test PKG [FLAGS...]: `go build` (or `go test -c`)
# PKG from hack/tools into $BIN/NAME unless the binary exists and its stamp
# matches.
built=0
build_tool() {
	local name=$1 stamp=$2 kind=$3 pkg=$4
	shift 4
	if [[ -z ${DEPS_FORCE:-} && -x $BIN/$name && -f $STAMPS/$name && "$(<"$STAMPS/$name")" == "$stamp" ]]; then
		return 0
	fi
	log "building $name ($stamp)"
	local start=$SECONDS tmp=$BIN/.$name.tmp.$$
	local cmd=(go build)
	[[ $kind == test ]] && cmd=(go test -c)
	# mkdir again: `make clean` may remove _output while we build.
	mkdir -p "$BIN" "$STAMPS"
	(cd "$TOOLS_DIR" && "${cmd[@]}" -trimpath -o "$tmp" "$@" "$pkg")
	mkdir -p "$BIN" "$STAMPS"
	mv -f "$tmp" "$BIN/$name"
	echo "$stamp" >"$STAMPS/$name"
	log "built $name in $((SECONDS - start))s"
	built=$((built + 1))
}

build_tools() {
	find_go
	mkdir -p "$BIN" "$STAMPS"
	# Serialize concurrent runs (e.g. two make targets) so a tool is built once.
	if command -v flock >/dev/null; then
		exec 9>"$BIN/.deps.lock"
		flock 9
	fi
	local gover sum crit ginkgo crane jsum
	gover=$(go env GOVERSION)
	sum=$(cat "$TOOLS_DIR/go.mod" "$TOOLS_DIR/go.sum" | sha256sum | cut -c1-16)
	crit=$(module_version sigs.k8s.io/cri-tools)
	ginkgo=$(module_version github.com/onsi/ginkgo/v2)
	crane=$(module_version github.com/google/go-containerregistry)
	jsum=$(cat "$TOOLS_DIR"/junitsummary/*.go | sha256sum | cut -c1-16)

	local crit_ld="-X sigs.k8s.io/cri-tools/pkg/version.Version=$crit"
	build_tool crictl "cri-tools@$crit $gover mod:$sum" build \
		sigs.k8s.io/cri-tools/cmd/crictl -ldflags "$crit_ld"
	build_tool critest "cri-tools@$crit $gover mod:$sum" test \
		sigs.k8s.io/cri-tools/cmd/critest -ldflags "$crit_ld"
	build_tool ginkgo "ginkgo@$ginkgo $gover mod:$sum" build \
		github.com/onsi/ginkgo/v2/ginkgo
	build_tool crane "go-containerregistry@$crane $gover mod:$sum" build \
		github.com/google/go-containerregistry/cmd/crane \
		-ldflags "-X github.com/google/go-containerregistry/cmd/crane/cmd.Version=$crane"
	build_tool junit-summary "junitsummary src:$jsum $gover" build \
		./junitsummary -buildvcs=false
	if [[ $built -eq 0 ]]; then
		log "Go tools up to date in ${BIN#"$ROOT"/}: crictl critest ginkgo crane junit-summary"
	fi
}

[[ -n ${DEPS_SKIP_APT:-} ]] || install_packages
[[ -n ${DEPS_SKIP_TOOLS:-} ]] || build_tools
