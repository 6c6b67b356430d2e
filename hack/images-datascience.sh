#!/usr/bin/env bash
# Build the data-science test images the way users build theirs and push
# them to the loopback registry (127.0.0.1:5000), under the upstream name
# docker.io/crisp-test/python-numpy (registry path crisp-test/python-numpy):
#
#   :bookworm     3 layers, as from this Dockerfile (~100 MB compressed):
#                   FROM scratch + debootstrap bookworm          (layer 1)
#                   RUN apt-get update && apt-get install python3 (layer 2)
#                   RUN apt-get install python3-numpy && rm -rf /var/lib/apt/lists/*
#                                                                (layer 3; its
#                   whiteouts delete the lists layer 2 wrote)
#   :bookworm-1g  the above + RUN apt-get install python3-scipy python3-pandas
#                 (layer 4) + COPY model/ /opt/model/: 896 MiB of incompressible
#                 "weights" (layer 5), over 1 GiB compressed in all
#
# Each RUN step runs in a chroot on an overlayfs whose upper directory
# becomes the layer (overlay whiteouts and opaque directories converted to
# OCI ones), as docker and buildkit do. Used by `make bench` only: a cold
# build downloads ~150 MB of Debian packages and takes minutes, so `make
# test` never builds these. The layer tarballs are cached in
# _output/cache/datascience; a rerun only checks the registry (or re-pushes
# from the cache if the registry lost them).
#
# Environment: IMAGES_CACHE (default _output/cache), REGISTRY_ADDR (default
# 127.0.0.1:5000), DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CACHE="${IMAGES_CACHE:-$ROOT/_output/cache}/datascience"
ADDR="${REGISTRY_ADDR:-${CRISP_TEST_REGISTRY:-127.0.0.1:5000}}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CRANE="$ROOT/_output/bin/crane"
REPO="$ADDR/crisp-test/python-numpy"
# Layer 5: "model weights", two files of incompressible bytes.
MODEL_MIB=(512 384)

log() { echo "images-datascience: $*" >&2; }

[[ -x $CRANE ]] || { log "$CRANE missing: run make deps"; exit 1; }
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v getfattr >/dev/null || need+=(attr)
command -v openssl >/dev/null || need+=(openssl)
command -v jq >/dev/null || need+=(jq)
if ((${#need[@]})); then
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq "${need[@]}" >/dev/null; }
fi
hack/registry.sh start >/dev/null

layers=(base python3 numpy scipy model)

# up_to_date: the registry serves both tags with the digests recorded when
# they were last pushed from these cached layers.
up_to_date() {
	local tag want got
	for tag in bookworm bookworm-1g; do
		want=$(cat "$CACHE/$tag.digest" 2>/dev/null) || return 1
		got=$("$CRANE" digest --insecure "$REPO:$tag" 2>/dev/null) || return 1
		[[ $want == "$got" ]] || return 1
	done
}

# crane logs every blob on stderr: shown only when a push fails.
crane() { "$CRANE" "$@" 2>>"$CACHE/push.log" || { tail -5 "$CACHE/push.log" >&2; return 1; }; }

push() {
	: >"$CACHE/push.log"
	local f=()
	for l in base python3 numpy; do f+=(-f "$CACHE/$l.tar.gz"); done
	crane append --insecure --oci-empty-base "${f[@]}" -t "$REPO:bookworm-layers" >/dev/null
	crane mutate --insecure "$REPO:bookworm-layers" -t "$REPO:bookworm" \
		--cmd python3 --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 >/dev/null
	crane append --insecure -b "$REPO:bookworm" -f "$CACHE/scipy.tar.gz" -f "$CACHE/model.tar.gz" -t "$REPO:bookworm-1g" >/dev/null
	crane delete --insecure "$REPO:bookworm-layers" >/dev/null || true
	crane digest --insecure "$REPO:bookworm" >"$CACHE/bookworm.digest"
	crane digest --insecure "$REPO:bookworm-1g" >"$CACHE/bookworm-1g.digest"
}

summary() {
	local tag total l
	for tag in bookworm bookworm-1g; do
		total=$("$CRANE" manifest --insecure "$REPO:$tag" | jq -r '"\(.layers | length) \([.layers[].size] | add)"')
		read -r l total <<<"$total"
		echo "images-datascience: crisp-test/python-numpy:$tag  $(cat "$CACHE/$tag.digest")  $l layers, $total bytes compressed"
	done
}

cached() {
	for l in "${layers[@]}"; do [[ -s $CACHE/$l.tar.gz ]] || return 1; done
}

if cached; then
	if up_to_date; then
		summary
		exit 0
	fi
	log "pushing the cached layers to $ADDR"
	push
	summary
	exit 0
fi

# ---------------------------------------------------------------------------
# Cold build.
start=$(date +%s)
mkdir -p "$CACHE/debs"
work=$(mktemp -d "$CACHE/build-XXXXXX")
merged="$work/merged"
cleanup() {
	set +e
	for m in "$merged/dev" "$merged/proc" "$merged"; do
		mountpoint -q "$m" && umount -l "$m"
	done
	rm -rf "$work"
}
trap cleanup EXIT

# step <name> <lower dirs, topmost first...> -- <shell command in the chroot>
# runs the command in a chroot on overlayfs; $work/<name> is then its upper
# directory, the layer's content in overlayfs form.
step() {
	local name=$1
	shift
	local lower=()
	while [[ $1 != -- ]]; do lower+=("$work/$1"); shift; done
	shift
	mkdir -p "$work/$name" "$work/$name.work" "$merged"
	local IFS=:
	# Full copy-ups and no redirects: the upper dir must be a plain tree.
	mount -t overlay overlay -o "lowerdir=${lower[*]},upperdir=$work/$name,workdir=$work/$name.work,redirect_dir=off,index=off,metacopy=off" "$merged"
	unset IFS
	mount -t proc proc "$merged/proc"
	mount --bind /dev "$merged/dev"
	cp /etc/resolv.conf "$merged/etc/resolv.conf"
	log "RUN $*"
	chroot "$merged" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
		/bin/sh -ec "$*" >"$work/$name.log" 2>&1 || { tail -20 "$work/$name.log" >&2; exit 1; }
	: >"$merged/etc/resolv.conf"
	umount "$merged/dev" "$merged/proc" "$merged"
	rm -rf "$work/$name.work"
}

# to_oci <dir>: overlay whiteouts (0/0 character devices) become .wh.<name>
# files and opaque directories get a .wh..wh..opq entry.
to_oci() {
	local dir=$1 f
	while IFS= read -r -d '' f; do
		if [[ $(stat -c '%t:%T' "$f") == 0:0 ]]; then
			rm "$f"
			: >"$(dirname "$f")/.wh.$(basename "$f")"
		fi
	done < <(find "$dir" -type c -print0)
	while IFS= read -r f; do
		: >"$f/.wh..wh..opq"
	done < <(getfattr -R -P --absolute-names -n trusted.overlay.opaque "$dir" 2>/dev/null | sed -n 's/^# file: //p')
}

# layer <dir> <name>: a gzip'd tar of dir's content (sorted, numeric owners,
# file capabilities kept, overlay xattrs not), cached as <name>.tar.gz.
layer() {
	local dir=$1 name=$2
	(cd "$dir" && find . -mindepth 1 -printf '%P\0' | sort -z |
		tar --null --no-recursion -T - --numeric-owner --xattrs --xattrs-include=security.capability -cf -) |
		gzip -n >"$CACHE/$name.tar.gz.tmp"
	mv "$CACHE/$name.tar.gz.tmp" "$CACHE/$name.tar.gz"
	log "layer $name: $(du -sh --apparent-size "$dir" | cut -f1) unpacked, $(du -h --apparent-size "$CACHE/$name.tar.gz" | cut -f1) compressed"
}

log "debootstrap bookworm from $MIRROR (debs cached in $CACHE/debs)"
debootstrap --cache-dir="$CACHE/debs" bookworm "$work/base" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
	{ tail -20 "$work/debootstrap.log" >&2; exit 1; }
# As the debian image is trimmed: no device nodes, package lists or caches.
rm -rf "$work/base/dev/"* "$work/base/var/lib/apt/lists/"* "$work/base/var/cache/apt/"*.bin \
	"$work/base/var/cache/apt/archives/"*.deb "$work/base/var/log/"*.log
: >"$work/base/etc/resolv.conf"

step python3 base -- 'apt-get update && apt-get install -y python3 && apt-get clean'
step numpy python3 base -- 'apt-get install -y python3-numpy && apt-get clean && rm -rf /var/lib/apt/lists/*'
step scipy numpy python3 base -- 'apt-get update && apt-get install -y python3-scipy python3-pandas && apt-get clean && rm -rf /var/lib/apt/lists/*'

mkdir -p "$work/model/opt/model"
for i in "${!MODEL_MIB[@]}"; do
	# AES-CTR of zeros under a fixed key: incompressible and reproducible.
	head -c "$((MODEL_MIB[i] << 20))" /dev/zero |
		openssl enc -aes-128-ctr -nosalt -K 63726973702064617461207363696521 -iv 00000000000000000000000000000000 >"$work/model/opt/model/weights-$i.bin"
done

for l in "${layers[@]}"; do
	[[ $l == base ]] || to_oci "$work/$l"
done
for l in "${layers[@]}"; do
	layer "$work/$l" "$l"
done
push
log "cold build took $(($(date +%s) - start)) s"
summary
