// Package failpoint lets the fault-injection suite (test/failpoint_test.go)
// crash crisp at a named step of an RPC, as a power cut or kill -9 would.
//
// Failpoints exist only in binaries built with the build tag "failpoint"
// (make build-failpoint). A production binary has no failpoint code at all:
// Hit is an empty function the compiler inlines away, and no environment
// variable can arm one — a node must never kill its runtime because of a
// stray variable. The tagged build reads CRISP_FAILPOINTS once at start-up:
//
//	CRISP_FAILPOINTS=pod-run/after-cni-add=kill,image-remove/after-record=error
//
// Each fires once per process. Actions: "kill" (SIGKILL this process: the realistic crash, no deferred
// cleanup runs), "error" (Hit returns an error, the RPC's own failure path
// runs), "kill-parent" (SIGKILL the parent, then go on after a pause: the
// monitor's way of crashing the daemon while it waits for the monitor).
package failpoint

// EnvVar arms failpoints in a binary built with the tag "failpoint".
const EnvVar = "CRISP_FAILPOINTS"
