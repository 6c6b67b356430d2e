#!/usr/bin/env bash
# Where small-file time goes in an overlayfs root: runs crisp-bench's
# small-file workload (20,000 x 4 KiB: create, stat, open+read; and
# first-stat "lookup", stat, open+read of 20,000 files that live in the
# bottom image layer) in a plain directory and in overlays with different
# layer counts and mount options, all on the filesystem of BASE, interleaved
# per round; prints each variant's medians as % of the plain directory.
# "image copyup" sets the times of 2,000 of the image files (a copy-up each).
# Each round remounts the overlays, as a new container would.
#
#   hack/bench/overlayfs.sh [BASE (default /var/lib/crisp-overlay-bench)] [ROUNDS (default 3)]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
base=${1:-/var/lib/crisp-overlay-bench}
rounds=${2:-3}
bin=$repo/_output/bin/crisp-bench-static
(cd "$repo" && CGO_ENABLED=0 go build -o "$bin" ./cmd/crisp-bench)

[[ ! -e $base ]] || { echo "$base exists; remove it first" >&2; exit 1; }
mkdir -p "$base"
cleanup() {
	grep -o " $base/[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l
	rm -rf "$base"
}
trap cleanup EXIT

# 20 image layers: the bottom one holds data/ with the files, every one
# holds a few directories of its own, as image layers do.
for i in $(seq 1 20); do
	mkdir -p "$base/layers/$i/usr/share/l$i" "$base/layers/$i/tmp" "$base/layers/$i/data"
	echo "$i" >"$base/layers/$i/usr/share/l$i/file"
done
"$bin" -smallfile "$base/layers/1" >/dev/null
mv "$base"/layers/1/smallfile-*/* "$base/layers/1/data/"
lowers() { # <n>: lowerdir value with n layers, top first
	local i out=""
	for i in $(seq "$1" -1 1); do out+="${out:+:}$base/layers/$i"; done
	echo "$out"
}

# name|layers|extra options
variants=(
	"1 layer|1|"
	"5 layers|5|"
	"20 layers|20|"
	"1 layer, volatile|1|,volatile"
	"1 layer, xino=off|1|,xino=off"
	"1 layer, xino=on|1|,xino=on"
	"1 layer, redirect_dir=on|1|,redirect_dir=on"
	"1 layer, metacopy=on|1|,redirect_dir=on,metacopy=on"
	"5 layers, volatile,xino=off|5|,volatile,xino=off"
)
mkdir -p "$base/plain/tmp"
cp -a "$base/layers/1/data" "$base/plain/data"
samples=$base/samples.tsv
for r in $(seq 1 "$rounds"); do
	for k in "${!variants[@]}"; do
		IFS='|' read -r name n opts <<<"${variants[$k]}"
		m=$base/m$k
		umount "$m" 2>/dev/null || true
		# A new writable layer each round, as for a new container: the
		# image's files are copied up again.
		rm -rf "$base/u$k" "$base/w$k"
		mkdir -p "$m" "$base/u$k" "$base/w$k"
		mount -t overlay overlay -o "lowerdir=$(lowers "$n"),upperdir=$base/u$k,workdir=$base/w$k$opts" "$m"
	done
	# A new mount has no dentries of its own: "lookup" is the first stat of
	# an image file in a new container, against the host's cached dentries
	# (the plain directory's, and the layers' below the overlay alike).
	for k in -1 "${!variants[@]}"; do
		if ((k < 0)); then name=plain d=$base/plain; else name=${variants[$k]%%|*} d=$base/m$k; fi
		printf '%s\tnew\t%s\n' "$name" "$("$bin" -smallfile "$d/tmp")" >>"$samples"
		printf '%s\timage\t%s\n' "$name" "$("$bin" -smallfile "$d/data" -smallfile-existing)" >>"$samples"
	done
done

python3 - "$samples" <<'PY'
import json, statistics, sys
rows, order = {}, []
for line in open(sys.argv[1]):
    name, kind, js = line.rstrip("\n").split("\t", 2)
    if name not in order:
        order.append(name)
    for clock, rates in json.loads(js).items():
        for k, v in rates.items():
            rows.setdefault((clock, name, kind, k), []).append(v)
med = {k: statistics.median(v) for k, v in rows.items()}
cols = [("new", "create"), ("new", "stat"), ("new", "read"), ("image", "lookup"), ("image", "stat"), ("image", "read"), ("image", "copyup")]
for clock in ("cpu", "wall"):
    print("\nper %s second; %% of plain, medians of %d rounds" % (clock, len(rows[(clock, "plain", "new", "create")])))
    print("%-30s" % "variant" + "".join("%14s" % ("%s %s" % c) for c in cols))
    for name in order:
        cells = []
        for kind, k in cols:
            v, p = med.get((clock, name, kind, k)), med.get((clock, "plain", kind, k))
            cells.append("%14s" % ("%.0f/s" % v if name == "plain" else "%.0f %%" % (100 * v / p)))
        print("%-30s" % name + "".join(cells))
PY
