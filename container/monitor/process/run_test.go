package process

import (
	"testing"

	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
)

func TestExitRecord(t *testing.T) {
	for _, tc := range []struct {
		name              string
		exited, signaled  bool
		code, sig         int
		oom               bool
		wantCode, wantSig int
		wantReason        string
		wantMessage       string
	}{
		{name: "zero", exited: true, wantReason: proto.ReasonCompleted},
		{name: "code", exited: true, code: 3, wantCode: 3, wantReason: proto.ReasonError},
		{name: "signal", signaled: true, sig: 9, wantCode: 137, wantSig: 9, wantReason: proto.ReasonError, wantMessage: "killed by signal 9"},
		{name: "oom", signaled: true, sig: 9, oom: true, wantCode: 137, wantSig: 9, wantReason: proto.ReasonOOMKilled, wantMessage: "killed by signal 9"},
		// A zero exit with an OOM kill in the cgroup (a child was killed)
		// is still reported as OOMKilled.
		{name: "oom child", exited: true, oom: true, wantReason: proto.ReasonOOMKilled},
		{name: "neither", wantCode: 255, wantReason: proto.ReasonError, wantMessage: "unexpected wait status"},
	} {
		e := exitFromWaitStatus(tc.exited, tc.code, tc.signaled, tc.sig)
		setReason(&e, tc.oom)
		if e.ExitCode != tc.wantCode || e.Signal != tc.wantSig || e.Reason != tc.wantReason || e.Message != tc.wantMessage || e.OOMKilled != tc.oom {
			t.Errorf("%s: %+v", tc.name, e)
		}
	}
}
