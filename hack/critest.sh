#!/usr/bin/env bash
# hack/critest.sh: run the CRI validation suite (critest, cri-tools v1.37.0)
# against a running crisp and print one summary line:
#
#   critest: N passed, N failed, N skipped
#
# Exits non-zero when a spec failed or critest itself failed.
# Tools come from _output/bin (built by hack/deps.sh).
#
# Usage: hack/critest.sh [options] [-- extra critest flags...]
#
#   option            environment            default
#   --socket PATH     CRISP_SOCKET           /run/crisp/crisp.sock
#   --focus REGEX     CRITEST_FOCUS          (all specs)
#   --skip-file FILE  CRITEST_SKIP_FILE      test/critest-skips.txt
#   --parallel N      CRITEST_PARALLEL       1
#   --report-dir DIR  CRITEST_REPORT_DIR     _output/critest
#   --nri-socket PATH CRISP_NRI_SOCKET       (unset: NRI specs skip themselves)
#   --timeout DUR     CRITEST_TIMEOUT        60m (ginkgo suite timeout)
#   --list            list the specs (dry run) grouped, honouring focus and
#                     skip file, into <report-dir>/specs.txt; needs no socket
#                     CRITEST_ARGS           extra critest flags (word-split)
#
# The skip file holds one regexp per line ('#' comment lines give reasons);
# the lines are joined with | into -ginkgo.skip. Relative paths in the
# defaults are relative to the repository root.
#
# Outputs in the report dir: junit.xml (-ginkgo.junit-report; critest's own
# -report-dir writes nothing in v1.37.0) and critest.log.
#
# Host side effects handled here: critest's port specs need host ports
# 12000-12003 free (checked before the run), and its HostIpc specs run
# `ipcmk -M 1048576` on the host and never remove the segment, so new 1 MiB
# SysV shared-memory segments that appeared during the run are removed after.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/_output/bin

SOCKET=${CRISP_SOCKET:-/run/crisp/crisp.sock}
FOCUS=${CRITEST_FOCUS:-}
SKIP_FILE=${CRITEST_SKIP_FILE-$ROOT/test/critest-skips.txt}
PARALLEL=${CRITEST_PARALLEL:-1}
REPORT_DIR=${CRITEST_REPORT_DIR:-$ROOT/_output/critest}
NRI_SOCKET=${CRISP_NRI_SOCKET:-}
TIMEOUT=${CRITEST_TIMEOUT:-60m}
LIST=
EXTRA=()
# shellcheck disable=SC2206 # word splitting of CRITEST_ARGS is intended
[[ -n ${CRITEST_ARGS:-} ]] && EXTRA=(${CRITEST_ARGS})

die() { echo "critest.sh: error: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

while [[ $# -gt 0 ]]; do
	case $1 in
	--socket) SOCKET=${2:?}; shift 2 ;;
	--focus) FOCUS=${2?}; shift 2 ;;
	--skip-file) SKIP_FILE=${2?}; shift 2 ;;
	--parallel) PARALLEL=${2:?}; shift 2 ;;
	--report-dir) REPORT_DIR=${2:?}; shift 2 ;;
	--nri-socket) NRI_SOCKET=${2?}; shift 2 ;;
	--timeout) TIMEOUT=${2:?}; shift 2 ;;
	--list) LIST=1; shift ;;
	-h | --help) usage; exit 0 ;;
	--) shift; EXTRA+=("$@"); break ;;
	*) die "unknown argument $1 (see --help; pass critest flags after --)" ;;
	esac
done

[[ $PARALLEL =~ ^[1-9][0-9]*$ ]] || die "CRITEST_PARALLEL must be a positive integer, got '$PARALLEL'"
for tool in critest junit-summary; do
	[[ -x $BIN/$tool ]] || die "$BIN/$tool not found: run hack/deps.sh first"
done
if [[ $PARALLEL -gt 1 ]]; then
	# critest -parallel=N (N>1) re-runs itself under the ginkgo CLI from PATH.
	[[ -x $BIN/ginkgo ]] || die "$BIN/ginkgo not found (needed for --parallel > 1): run hack/deps.sh first"
fi
export PATH=$BIN:$PATH

mkdir -p "$REPORT_DIR"
REPORT_DIR=$(cd "$REPORT_DIR" && pwd)

# Skip regexp from the skip file.
SKIP=
if [[ -n $SKIP_FILE ]]; then
	[[ -f $SKIP_FILE ]] || die "skip file $SKIP_FILE does not exist (set CRITEST_SKIP_FILE= to skip nothing)"
	while IFS= read -r line || [[ -n $line ]]; do
		line=$(sed -E 's/[[:space:]]+#.*$//; s/^[[:space:]]+//; s/[[:space:]]+$//' <<<"$line")
		[[ -z $line || $line == \#* ]] && continue
		SKIP+="${SKIP:+|}($line)"
	done <"$SKIP_FILE"
fi

ARGS=(-ginkgo.timeout="$TIMEOUT")
[[ -n $FOCUS ]] && ARGS+=(-ginkgo.focus="$FOCUS")
[[ -n $SKIP ]] && ARGS+=(-ginkgo.skip="$SKIP")
if [[ ! -t 1 || -n ${CI:-} ]]; then
	ARGS+=(-ginkgo.no-color)
fi

if [[ -n $LIST ]]; then
	json=$REPORT_DIR/specs.json
	(cd "$REPORT_DIR" && critest "${ARGS[@]}" -ginkgo.dry-run -ginkgo.json-report="$json" "${EXTRA[@]}" >"$REPORT_DIR/dry-run.log" 2>&1) ||
		die "critest dry run failed, see $REPORT_DIR/dry-run.log"
	junit-summary -specs "$json" | tee "$REPORT_DIR/specs.txt"
	echo "critest.sh: spec list written to $REPORT_DIR/specs.txt" >&2
	exit 0
fi

[[ -e $SOCKET ]] || die "crisp CRI socket $SOCKET does not exist: start crisp first or set CRISP_SOCKET / --socket"
[[ -S $SOCKET ]] || die "$SOCKET exists but is not a unix socket"

# Host ports critest binds or maps (pkg/validate/consts*.go).
busy=$(ss -Htlnu 2>/dev/null | awk '{ n = split($5, a, ":"); p = a[n]; if (p >= 12000 && p <= 12003) print $1 " " $5 }' | sort -u)
if [[ -n $busy ]]; then
	echo "critest.sh: error: host ports 12000-12003 must be free for critest's port mapping/forwarding specs; in use:" >&2
	# shellcheck disable=SC2001
	echo "$busy" | sed 's/^/  /' >&2
	exit 2
fi

# SysV shared-memory segments before the run.
shm_ids() { ipcs -m 2>/dev/null | awk '$2 ~ /^[0-9]+$/ && $5 == 1048576 { print $2 }' | sort; }
SHM_BEFORE=$(shm_ids)
cleanup_shm() {
	local id n=0
	for id in $(comm -13 <(echo "$SHM_BEFORE") <(shm_ids)); do
		ipcrm -m "$id" 2>/dev/null && n=$((n + 1))
	done
	[[ $n -eq 0 ]] || echo "critest.sh: removed $n shared-memory segment(s) left by critest's HostIpc specs" >&2
}
trap 'cleanup_shm; exit 130' INT TERM

JUNIT=$REPORT_DIR/junit.xml
LOG=$REPORT_DIR/critest.log
rm -f "$JUNIT"
ARGS+=(
	-runtime-endpoint="unix://$SOCKET"
	-image-endpoint="unix://$SOCKET"
	-ginkgo.v
	-ginkgo.junit-report="$JUNIT"
)
# Only pass -parallel for N > 1: ginkgo rejects a run in which a flag named
# "parallel" was set at all ("Use of go test -parallel"), even -parallel=1.
[[ $PARALLEL -gt 1 ]] && ARGS+=(-parallel="$PARALLEL")
[[ -n $NRI_SOCKET ]] && ARGS+=(-nri-socket="$NRI_SOCKET")
ARGS+=("${EXTRA[@]}")

echo "critest.sh: critest ${ARGS[*]}" >&2
set +e
# Run from the report dir: critest (via the ginkgo CLI with -parallel) may
# drop files in its working directory.
(cd "$REPORT_DIR" && critest "${ARGS[@]}") 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e
trap - INT TERM
cleanup_shm

if [[ ! -s $JUNIT ]]; then
	echo "critest.sh: error: critest exited with status $rc and wrote no JUnit report ($JUNIT); see $LOG" >&2
	exit $((rc == 0 ? 2 : rc))
fi
set +e
summary=$(junit-summary -failed -prefix critest "$JUNIT")
src=$?
set -e
if [[ $src -eq 2 ]]; then
	echo "critest.sh: error: cannot read $JUNIT" >&2
	exit 2
fi
if [[ $rc -ne 0 && $src -eq 0 ]]; then
	echo "critest.sh: critest exited with status $rc although no spec failed; see $LOG" >&2
fi
echo "$summary"
if [[ $src -ne 0 ]]; then
	exit 1
fi
exit $((rc == 0 ? 0 : 1))
