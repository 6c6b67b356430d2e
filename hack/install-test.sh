#!/usr/bin/env bash
# hack/install-test.sh: make install / make uninstall (hack/install.sh), into
# DESTDIR trees and onto this machine; part of `make test` (a few seconds).
#
#   1. A fresh DESTDIR: every file in place with its mode, the unit's
#      ExecStart at PREFIX, crisp.toml loading as the defaults, the default
#      network, crictl.yaml; a reinstall changes nothing; after an edit of
#      crisp.toml, uninstall leaves exactly that file.
#   2. A DESTDIR whose configurations exist: install and uninstall leave them
#      byte for byte, and write no CNI network beside the operator's.
#   3. This machine (DESTDIR empty, PREFIX=/usr/local), unless crisp is
#      installed here already: the installed crisp check passes with the
#      installed network, and uninstall leaves the machine as it was.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$repo/_output/bin}
work=$(mktemp -d /tmp/install-test-XXXXXX)
trap 'rm -rf "$work"' EXIT

checks=0
ok() { checks=$((checks + 1)); echo "ok   $*"; }
fail() { echo "FAIL $*" >&2; exit 1; }
expect() { # <what> <want> <got>
	[[ $2 == "$3" ]] || fail "$1: want [$2], got [$3]"
	ok "$1"
}
inst() { BIN=$bin "$repo/hack/install.sh" "$@" >>"$work/log" 2>&1 || { cat "$work/log" >&2; fail "install.sh $*"; }; }
tree() { (cd "$1" && find . -mindepth 1 | sort | tr '\n' ' '); }
defaults=$("$bin/crisp" config --config /dev/null)

# --- 1. fresh DESTDIR ---
d=$work/fresh
export DESTDIR=$d PREFIX=/opt/crisp
inst install
for f in opt/crisp/bin/crisp:755 opt/crisp/bin/crisp-monitor:755 etc/systemd/system/crisp.service:644 \
	etc/crisp/crisp.toml:644 etc/crictl.yaml:644 etc/cni/net.d/10-crisp.conflist:644; do
	expect "installed ${f%:*}" "${f#*:}" "$(stat -c %a "$d/${f%:*}" 2>/dev/null || echo missing)"
done
expect "unit runs the installed crisp" "ExecStart=/opt/crisp/bin/crisp --listen /run/crisp/crisp.sock" \
	"$(grep '^ExecStart=' "$d/etc/systemd/system/crisp.service")"
expect "crisp.toml loads as the defaults" "$defaults" "$("$d/opt/crisp/bin/crisp" config --config "$d/etc/crisp/crisp.toml")"
expect "crisp.toml documents every key, commented out" "$(grep -c ' = ' <<<"$defaults")" \
	"$(grep -cE '^\s*# [a-z_]+ = ' "$d/etc/crisp/crisp.toml")"
"$repo/hack/cni-config.sh" "$work/net.d" >/dev/null
expect "the default CNI network" "$(cat "$work/net.d/10-crisp.conflist")" "$(cat "$d/etc/cni/net.d/10-crisp.conflist")"
expect "crictl.yaml points at crisp" "runtime-endpoint: unix:///run/crisp/crisp.sock" "$(grep '^runtime-endpoint' "$d/etc/crictl.yaml")"
manifest=$(cat "$d/opt/crisp/share/crisp/install-manifest")
inst install
expect "a reinstall changes nothing" "$manifest" "$(cat "$d/opt/crisp/share/crisp/install-manifest")"
echo 'root = "/srv/crisp"' >>"$d/etc/crisp/crisp.toml"
: >"$work/log"
inst uninstall
expect "uninstall keeps the edited crisp.toml, removes the rest" "./etc ./etc/crisp ./etc/crisp/crisp.toml " "$(tree "$d")"
grep -q "kept .*crisp.toml (changed since install)" "$work/log" || fail "uninstall does not say it kept crisp.toml: $(cat "$work/log")"
ok "uninstall names the kept file"

# --- 2. configurations exist ---
d=$work/configured
export DESTDIR=$d PREFIX=/usr/local
mkdir -p "$d/etc/crisp" "$d/etc/cni/net.d"
echo 'cgroup_driver = "systemd"' >"$d/etc/crisp/crisp.toml"
echo 'runtime-endpoint: unix:///run/containerd/containerd.sock' >"$d/etc/crictl.yaml"
cp "$work/net.d/10-crisp.conflist" "$d/etc/cni/net.d/05-other.conflist"
before=$(cd "$d" && find . -type f | sort | xargs sha256sum)
inst install
[[ ! -e $d/etc/cni/net.d/10-crisp.conflist ]] || fail "install wrote a network beside the operator's"
ok "no default network beside an existing one"
expect "existing configurations untouched by install" "$before" "$(cd "$d" && find . -type f -path './etc/c*' | sort | xargs sha256sum)"
inst uninstall
expect "uninstall leaves only the operator's files" "$before" "$(cd "$d" && find . -type f | sort | xargs sha256sum)"
expect "uninstall leaves the operator's directories" "./etc ./etc/cni ./etc/cni/net.d ./etc/cni/net.d/05-other.conflist ./etc/crictl.yaml ./etc/crisp ./etc/crisp/crisp.toml " "$(tree "$d")"

# --- 3. this machine ---
unset DESTDIR
export PREFIX=/usr/local
if [[ -e /usr/local/bin/crisp || -e /etc/systemd/system/crisp.service || -e /usr/local/share/crisp ]]; then
	echo "skip this machine: crisp is installed here already (/usr/local/bin/crisp, crisp.service or /usr/local/share/crisp); not touching it"
else
	paths=(/usr/local/bin/crisp /usr/local/bin/crisp-monitor /etc/systemd/system/crisp.service /etc/crisp /etc/crictl.yaml /etc/cni /usr/local/share/crisp)
	state() { local p; for p in "${paths[@]}"; do if [[ -e $p ]]; then find "$p" -type f | sort | xargs -r sha256sum; else echo "absent $p"; fi; done; }
	before=$(state)
	inst install
	out=$(/usr/local/bin/crisp check 2>&1) || { echo "$out" >&2; BIN=$bin "$repo/hack/install.sh" uninstall >/dev/null; fail "crisp check after make install"; }
	if [[ -f /etc/cni/net.d/10-crisp.conflist ]] && ! grep -q "ok    CNI network .*10-crisp.conflist" <<<"$out"; then
		echo "$out" >&2
		BIN=$bin "$repo/hack/install.sh" uninstall >/dev/null
		fail "crisp check does not use the installed network"
	fi
	ok "installed crisp check passes: $(grep -c '^ok' <<<"$out") ok, $(grep -c '^WARN' <<<"$out") warnings"
	inst uninstall
	expect "uninstall leaves this machine as it was" "$before" "$(state)"
fi
echo "install-test: $checks checks passed"
