package monitor

import (
	"os"
	"syscall"
	"testing"
)

func TestParseSignalState(t *testing.T) {
	status := func(nspid, blk, ign, cgt string) []byte {
		return []byte("Name:\tsh\nNSpid:\t" + nspid + "\nSigQ:\t0/94711\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n" +
			"SigBlk:\t" + blk + "\nSigIgn:\t" + ign + "\nSigCgt:\t" + cgt + "\n")
	}
	const none = "0000000000000000"
	const term = "0000000000004000" // bit 14: SIGTERM (15)
	for _, tc := range []struct {
		name      string
		status    []byte
		discarded bool
	}{
		{"ns init, default disposition", status("4242\t1", none, none, none), true},
		{"ns init, caught", status("4242\t1", none, none, term), false},
		{"ns init, blocked", status("4242\t1", term, none, none), false},
		{"ns init, ignored by choice", status("4242\t1", none, term, none), false},
		{"ns init, another signal caught", status("4242\t1", none, none, "0000000000000002"), true},
		{"not an ns init", status("4242\t7", none, none, none), false},
		{"host pid namespace", status("4242", none, none, none), false},
	} {
		s, ok := parseSignalState(tc.status, syscall.SIGTERM)
		if !ok {
			t.Errorf("%s: not parsed", tc.name)
			continue
		}
		if s.discarded() != tc.discarded {
			t.Errorf("%s: discarded = %v, want %v (%+v)", tc.name, s.discarded(), tc.discarded, s)
		}
	}
	pre := []byte("Name:\trunc:[2:INIT]\nNSpid:\t4242\t1\nSigBlk:\t" + none + "\nSigIgn:\t" + none + "\nSigCgt:\tfffffffe7fc1feff\n")
	if s, ok := parseSignalState(pre, syscall.SIGTERM); !ok || !s.preExec || s.discarded() {
		t.Errorf("libcontainer's init before its exec: %+v, %v", s, ok)
	}
	if s, _ := parseSignalState(status("4242\t1", none, none, none), syscall.SIGTERM); s.preExec {
		t.Errorf("sh taken for the init before its exec")
	}
	if _, ok := parseSignalState([]byte("Name:\tsh\nSigCgt:\tzz\n"), syscall.SIGTERM); ok {
		t.Error("a status without the fields parsed")
	}
}

// TestReadSignalStateSelf reads this test process's real status file: Go
// catches SIGTERM, and the test runs outside a pid namespace of its own
// unless the machine put it in one.
func TestReadSignalStateSelf(t *testing.T) {
	s, ok := readSignalState(os.Getpid(), syscall.SIGTERM)
	if !ok {
		t.Fatal("cannot read /proc/self/status")
	}
	if !s.caught {
		t.Errorf("the Go runtime's SIGTERM handler is not seen: %+v", s)
	}
}
