#!/usr/bin/env bash
# Local OCI registry for crisp's tests (hack/cmd/testregistry).
#
#   hack/registry.sh start    build if needed, start in the background, wait for /v2/
#   hack/registry.sh stop     stop the instance recorded in the pidfile (by PID only)
#   hack/registry.sh status   exit 0 and print the PID if running, exit 1 otherwise
#
# Environment:
#   REGISTRY_ADDR  listen address            (default $CRISP_TEST_REGISTRY or 127.0.0.1:5000)
#   REGISTRY_DIR   blob/manifest storage     (default _output/registry)
#   REGISTRY_PID   pidfile                   (default _output/registry.pid)
#   REGISTRY_LOG   log file                  (default _output/registry.log)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ADDR="${REGISTRY_ADDR:-${CRISP_TEST_REGISTRY:-127.0.0.1:5000}}"
DIR="${REGISTRY_DIR:-$ROOT/_output/registry}"
PIDFILE="${REGISTRY_PID:-$ROOT/_output/registry.pid}"
LOG="${REGISTRY_LOG:-$ROOT/_output/registry.log}"
BIN="$ROOT/_output/bin/testregistry"

running_pid() {
	[[ -f "$PIDFILE" ]] || return 1
	local pid
	pid="$(cat "$PIDFILE" 2>/dev/null || true)"
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	# Make sure the PID was not recycled by an unrelated process.
	[[ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" == "$BIN"* ]] || return 1
	echo "$pid"
}

answers() {
	# /v2/ must answer 200 (plain HTTP, loopback only).
	local code
	code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$ADDR/v2/" 2>/dev/null || true)"
	[[ "$code" == "200" ]]
}

build() {
	local need=0
	if [[ ! -x "$BIN" ]]; then
		need=1
	elif [[ -n "$(find hack/cmd/testregistry go.mod go.sum -newer "$BIN" -print -quit 2>/dev/null)" ]]; then
		need=1
	fi
	if ((need)); then
		mkdir -p "$(dirname "$BIN")"
		go build -o "$BIN" ./hack/cmd/testregistry
	fi
}

start() {
	if pid="$(running_pid)"; then
		if answers; then
			echo "registry already running (pid $pid) on $ADDR"
			return 0
		fi
	fi
	if ! command -v curl >/dev/null 2>&1; then
		apt-get install -y -qq curl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
	fi
	if answers; then
		# Another checkout's registry (helpers share the machine), or the
		# host's seen from the VM test lane's guest: a registry is a registry.
		echo "registry already answers on $ADDR (not started by this checkout)"
		return 0
	fi
	build
	mkdir -p "$DIR" "$(dirname "$PIDFILE")" "$(dirname "$LOG")"
	setsid "$BIN" --addr "$ADDR" --dir "$DIR" >>"$LOG" 2>&1 </dev/null &
	local pid=$!
	echo "$pid" >"$PIDFILE"
	for _ in $(seq 1 100); do
		if answers; then
			echo "registry started (pid $pid) on $ADDR, data in $DIR"
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "error: registry exited; see $LOG" >&2
			tail -n 20 "$LOG" >&2 || true
			rm -f "$PIDFILE"
			return 1
		fi
		sleep 0.1
	done
	echo "error: registry did not answer on http://$ADDR/v2/ within 10s; see $LOG" >&2
	return 1
}

stop() {
	local pid
	if ! pid="$(running_pid)"; then
		rm -f "$PIDFILE"
		echo "registry not running"
		return 0
	fi
	kill "$pid"
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$PIDFILE"
	echo "registry stopped (pid $pid)"
}

status() {
	local pid
	if pid="$(running_pid)" && answers; then
		echo "registry running (pid $pid) on $ADDR"
		return 0
	fi
	echo "registry not running"
	return 1
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
