#!/usr/bin/env bash
# hack/install.sh install|uninstall: what `make install` and `make uninstall` do.
#
# install puts, under $DESTDIR:
#   $PREFIX/bin/crisp, $PREFIX/bin/crisp-monitor   (from _output/bin)
#   $UNITDIR/crisp.service                          (hack/systemd, ExecStart at $PREFIX)
#   $SYSCONFDIR/crisp/crisp.toml   `crisp config --commented`: every key commented
#                                  out at its default, so it cannot drift from them
#   $SYSCONFDIR/crictl.yaml        crictl pointed at crisp's socket
#   $CNI_CONF_DIR/10-crisp.conflist crisp's default network (hack/cni-config.sh)
# A configuration file (the last three) is written only where none exists: an
# operator's file is never overwritten; the CNI network only when the
# directory holds no network configuration at all.
#
# Every file written is recorded with its sha256 in the manifest
# $PREFIX/share/crisp/install-manifest, with the directories install created.
# uninstall removes a recorded file only while it still has the recorded
# hash: a configuration the operator edited since is kept (and named), as is
# everything install did not write. Then it removes the manifest and the
# recorded directories that are empty. A reinstall refreshes a recorded
# configuration that is still unmodified (new defaults' comments) and keeps
# an edited one.
#
# Environment: DESTDIR (staging root, default none), PREFIX (/usr/local),
# UNITDIR (/etc/systemd/system), SYSCONFDIR (/etc), CNI_CONF_DIR
# ($SYSCONFDIR/cni/net.d), BIN (the built binaries, _output/bin).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
UNITDIR=${UNITDIR:-/etc/systemd/system}
SYSCONFDIR=${SYSCONFDIR:-/etc}
CNI_CONF_DIR=${CNI_CONF_DIR:-$SYSCONFDIR/cni/net.d}
BIN=${BIN:-$repo/_output/bin}
manifest=$DESTDIR$PREFIX/share/crisp/install-manifest

die() { echo "install.sh: $*" >&2; exit 1; }
sum() { sha256sum "$1" | cut -d' ' -f1; }

# recorded PATH: the hash the old manifest has for PATH (without DESTDIR), if any.
recorded() {
	[[ -f $old ]] || return 0
	awk -v p="$1" '$1 == "file" && $3 == p { print $2 }' "$old"
}

# mkdirs DIR: create DIR and its missing parents, recording those created.
mkdirs() {
	local d=$1 missing=()
	while [[ ! -d $DESTDIR$d && $d != / ]]; do
		missing=("$d" "${missing[@]}")
		d=$(dirname "$d")
	done
	for d in "${missing[@]}"; do
		install -d -m 0755 "$DESTDIR$d"
		echo "dir - $d" >>"$new"
	done
}

# put MODE SRC PATH: install SRC at PATH (without DESTDIR) and record it.
put() {
	local mode=$1 src=$2 path=$3
	mkdirs "$(dirname "$path")"
	install -m "$mode" "$src" "$DESTDIR$path"
	echo "file $(sum "$DESTDIR$path") $path" >>"$new"
	echo "installed $DESTDIR$path"
}

# put_config SRC PATH: a configuration file, written only where there is
# none, or where there is the unmodified one a previous install wrote.
put_config() {
	local src=$1 path=$2 was
	if [[ -e $DESTDIR$path ]]; then
		was=$(recorded "$path")
		if [[ -z $was || $was != "$(sum "$DESTDIR$path")" ]]; then
			echo "kept     $DESTDIR$path (exists; not overwritten)"
			# Still ours, edited: uninstall names it as kept.
			[[ -z $was ]] || echo "file $was $path" >>"$new"
			return 0
		fi
	fi
	put 0644 "$src" "$path"
}

do_install() {
	[[ -x $BIN/crisp && -x $BIN/crisp-monitor ]] || die "$BIN/crisp and crisp-monitor are not built (make build)"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	old=$tmp/old new=$tmp/new
	: >"$new"
	[[ ! -f $manifest ]] || cp "$manifest" "$old"

	put 0755 "$BIN/crisp" "$PREFIX/bin/crisp"
	put 0755 "$BIN/crisp-monitor" "$PREFIX/bin/crisp-monitor"
	sed "s|/usr/local/bin/crisp|$PREFIX/bin/crisp|" "$repo/hack/systemd/crisp.service" >"$tmp/crisp.service"
	put 0644 "$tmp/crisp.service" "$UNITDIR/crisp.service"

	# The defaults, not the file at /etc/crisp/crisp.toml: /dev/null is an
	# empty configuration.
	"$BIN/crisp" config --commented --config /dev/null >"$tmp/crisp.toml"
	put_config "$tmp/crisp.toml" "$SYSCONFDIR/crisp/crisp.toml"
	printf '%s\n' "# crictl talks to crisp (installed by crisp's make install)." \
		"runtime-endpoint: unix:///run/crisp/crisp.sock" \
		"image-endpoint: unix:///run/crisp/crisp.sock" \
		"timeout: 10" >"$tmp/crictl.yaml"
	put_config "$tmp/crictl.yaml" "$SYSCONFDIR/crictl.yaml"

	local f have=
	for f in "$DESTDIR$CNI_CONF_DIR"/*.conf "$DESTDIR$CNI_CONF_DIR"/*.conflist "$DESTDIR$CNI_CONF_DIR"/*.json; do
		[[ -f $f ]] && have=$f && break
	done
	if [[ -n $have && $(recorded "$CNI_CONF_DIR/10-crisp.conflist") != "$(sum "$have" 2>/dev/null)" ]]; then
		echo "kept     $DESTDIR$CNI_CONF_DIR (holds $(basename "$have"); crisp uses it)"
	else
		mkdir -p "$tmp/net.d"
		"$repo/hack/cni-config.sh" "$tmp/net.d" >/dev/null
		put_config "$tmp/net.d/10-crisp.conflist" "$CNI_CONF_DIR/10-crisp.conflist"
	fi

	# Directories a previous install created stay recorded.
	[[ ! -f $old ]] || awk '$1 == "dir"' "$old" >>"$new"
	mkdirs "$(dirname "${manifest#"$DESTDIR"}")"
	sort -u "$new" >"$manifest"
	echo "manifest $manifest"
	echo "next: crisp check; on systemd: systemctl daemon-reload && systemctl enable --now crisp"
}

do_uninstall() {
	[[ -f $manifest ]] || die "no $manifest: nothing installed under ${DESTDIR:-/}$PREFIX"
	if [[ -z $DESTDIR ]] && command -v systemctl >/dev/null && systemctl is-active -q crisp 2>/dev/null; then
		echo "install.sh: crisp.service is running; it keeps running until: systemctl disable --now crisp" >&2
	fi
	local kind hash path dirs
	dirs=$(awk '$1 == "dir" { print $3 }' "$manifest" | sort -r)
	while read -r kind hash path; do
		[[ $kind == file && -e $DESTDIR$path ]] || continue
		if [[ $(sum "$DESTDIR$path") == "$hash" ]]; then
			rm -f "$DESTDIR$path"
			echo "removed  $DESTDIR$path"
		else
			echo "kept     $DESTDIR$path (changed since install)"
		fi
	done <"$manifest"
	rm -f "$manifest"
	# Deepest first (sort -r), and only when empty: a kept file keeps its
	# directory.
	for path in $dirs; do
		if rmdir "$DESTDIR$path" 2>/dev/null; then
			echo "removed  $DESTDIR$path/"
		fi
	done
}

case "${1:-}" in
install) do_install ;;
uninstall) do_uninstall ;;
*) die "usage: $0 install|uninstall" ;;
esac
