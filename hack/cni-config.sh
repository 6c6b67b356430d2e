#!/usr/bin/env bash
# Install crisp's default CNI configuration, and toggle the safety firewall
# rule that keeps pod traffic on the node.
#
# Usage:
#   hack/cni-config.sh [conf_dir] [bridge] [subnet]
#       Write <conf_dir>/10-crisp.conflist (defaults: /etc/cni/net.d, crisp0,
#       10.209.0.0/16) unless conf_dir already holds a *.conf, *.conflist or
#       *.json: an existing network configuration is never overridden.
#       Idempotent. The document matches network.DefaultConflist.
#   hack/cni-config.sh test-network <conf_dir> <name> <bridge> <subnet> <ipam_dir>
#       Write <conf_dir>/10-<name>.conflist for a test's private network: the
#       same bridge + host-local + portmap shape, IP leases kept in
#       <ipam_dir> so they go away with the test's work directory.
#   hack/cni-config.sh firewall-on <subnet>
#   hack/cni-config.sh firewall-off <subnet>
#       Add / remove `iptables -I FORWARD -s <subnet> ! -d <subnet> -j DROP`,
#       which stops pods from reaching anything but each other (and the node)
#       while a test or demo runs. Idempotent (checked with iptables -C).
set -euo pipefail

die() { echo "cni-config.sh: $*" >&2; exit 1; }

firewall_rule() { # <subnet>
	echo FORWARD -s "$1" ! -d "$1" -j DROP
}

firewall_on() {
	local subnet=${1:?subnet required}
	command -v iptables >/dev/null || die "iptables not installed"
	# shellcheck disable=SC2046
	if ! iptables -w -C $(firewall_rule "$subnet") 2>/dev/null; then
		# shellcheck disable=SC2046
		iptables -w -I $(firewall_rule "$subnet")
	fi
}

firewall_off() {
	local subnet=${1:?subnet required}
	command -v iptables >/dev/null || die "iptables not installed"
	# Loop: a rule inserted twice by a buggy caller should still go away.
	# shellcheck disable=SC2046
	while iptables -w -C $(firewall_rule "$subnet") 2>/dev/null; do
		# shellcheck disable=SC2046
		iptables -w -D $(firewall_rule "$subnet")
	done
}

write_config() {
	local dir=${1:-/etc/cni/net.d} bridge=${2:-crisp0} subnet=${3:-10.209.0.0/16}
	local route=0.0.0.0/0
	[[ $subnet == *:* ]] && route=::/0
	[[ $bridge =~ ^[A-Za-z0-9_.-]{1,15}$ ]] || die "invalid bridge name: $bridge"
	[[ $subnet =~ ^[0-9A-Fa-f.:]+/[0-9]+$ ]] || die "invalid subnet: $subnet"

	mkdir -p "$dir"
	local f
	for f in "$dir"/*.conf "$dir"/*.conflist "$dir"/*.json; do
		if [[ -f $f ]]; then
			echo "cni-config.sh: $f exists, leaving $dir alone"
			return 0
		fi
	done

	# Write to a temp file and rename, so a runtime scanning the directory
	# never sees a half-written configuration.
	local tmp
	tmp=$(mktemp "$dir/.10-crisp.conflist.XXXXXX")
	cat >"$tmp" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "crisp",
  "plugins": [
    {
      "bridge": "$bridge",
      "hairpinMode": true,
      "ipMasq": true,
      "ipam": {
        "ranges": [
          [
            {
              "subnet": "$subnet"
            }
          ]
        ],
        "routes": [
          {
            "dst": "$route"
          }
        ],
        "type": "host-local"
      },
      "isGateway": true,
      "type": "bridge"
    },
    {
      "capabilities": {
        "portMappings": true
      },
      "snat": true,
      "type": "portmap"
    }
  ]
}
EOF
	chmod 0644 "$tmp"
	mv -f "$tmp" "$dir/10-crisp.conflist"
	echo "cni-config.sh: wrote $dir/10-crisp.conflist (bridge $bridge, subnet $subnet)"
}

test_network() {
	local dir=$1 name=$2 bridge=$3 subnet=$4 ipam=$5
	mkdir -p "$dir"
	cat >"$dir/10-$name.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$name",
  "plugins": [
    {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$ipam", "ranges": [[{"subnet": "$subnet"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
  ]
}
EOF
}

case "${1:-}" in
test-network)
	[[ $# -eq 6 ]] || die "usage: test-network <conf_dir> <name> <bridge> <subnet> <ipam_dir>"
	test_network "${@:2}"
	;;
firewall-on) firewall_on "${2:-}" ;;
firewall-off) firewall_off "${2:-}" ;;
-h | --help) sed -n '2,21p' "$0" ;;
*) write_config "$@" ;;
esac
