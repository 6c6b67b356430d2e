# hack/lib/checks.sh: the PASS/FAIL bookkeeping shared by the check scripts
# (hack/e2e-kubelet.sh, hack/vm/smoke.sh, hack/vm/tests/*.sh). Each prints its own
# "NAME: N passed, N failed" line from $passed and $failed.
passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
# fail DESC [OUTPUT]: OUTPUT's first 20 lines are shown indented.
fail() {
	failed=$((failed + 1))
	echo "FAIL: $1"
	[[ -z ${2:-} ]] || head -20 <<<"$2" | sed 's/^/    /'
}
# expect DESC WANT GOT
expect() { if [[ $3 == "$2" ]]; then pass "$1: $3"; else fail "$1: got '$3', want '$2'"; fi; }
