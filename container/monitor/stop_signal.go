package monitor

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The kernel discards a signal sent to the init of a pid namespace when
// that signal is neither caught nor blocked there, even from an ancestor
// namespace (SIGKILL and SIGSTOP aside). A container whose program is its
// pid 1 has default dispositions from its exec until it installs its
// handlers, so a StopContainer right after StartContainer (critest does
// this; so does kubelet deleting a pod that just started) could lose the
// stop signal and wait out the whole grace period before the SIGKILL: 60 s
// for `sh -c top`, which handles SIGTERM a few milliseconds later. When the
// signal was at risk of being discarded, Stop watches the init's
// dispositions during the grace period and sends the signal again once
// the init catches or blocks it. A program that never does keeps the
// kernel's meaning, as in every runtime: the signal does nothing to it.

// initComm is the name libcontainer's nsexec gives the container's init
// until it execs the container's program.
const initComm = "runc:[2:INIT]"

// signalState is what /proc/<pid>/status says about one signal.
type signalState struct {
	preExec bool // still libcontainer's init, not the program
	nsInit  bool // pid 1 of its innermost pid namespace
	caught  bool // a handler is installed
	blocked bool // blocked: it stays pending until unblocked
	ignored bool // SIG_IGN: the program chose to ignore it
}

// discarded reports whether the kernel drops the signal on delivery.
func (s signalState) discarded() bool {
	return s.nsInit && !s.caught && !s.blocked && !s.ignored
}

// parseSignalState reads sig's state from the text of /proc/<pid>/status.
func parseSignalState(status []byte, sig syscall.Signal) (signalState, bool) {
	var s signalState
	var seen int
	bit := uint64(1) << (uint(sig) - 1)
	for _, line := range bytes.Split(status, []byte("\n")) {
		k, v, ok := strings.Cut(string(line), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Name":
			s.preExec = v == initComm
		case "NSpid":
			f := strings.Fields(v)
			s.nsInit = len(f) > 0 && f[len(f)-1] == "1"
			seen++
		case "SigBlk", "SigIgn", "SigCgt":
			mask, err := strconv.ParseUint(v, 16, 64)
			if err != nil {
				return s, false
			}
			set := mask&bit != 0
			switch k {
			case "SigBlk":
				s.blocked = set
			case "SigIgn":
				s.ignored = set
			default:
				s.caught = set
			}
			seen++
		}
	}
	return s, seen == 4
}

// readSignalState is sig's state in process pid; false if it cannot be
// read (the process is gone).
func readSignalState(pid int, sig syscall.Signal) (signalState, bool) {
	if pid <= 0 || sig <= 0 || sig > 64 {
		return signalState{}, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return signalState{}, false
	}
	return parseSignalState(b, sig)
}

// awaitExec waits, at most until deadline, until the init has exec'd the
// container's program. StartContainer returns once libcontainer has
// released the init to exec: a signal sent before the exec reaches the
// init's Go runtime, which dies of it with exit status 2 where the
// container was asked to stop, or stays pending across the exec and is
// then discarded.
func awaitExec(pid int, deadline time.Time, done <-chan struct{}) {
	delay := 200 * time.Microsecond
	for {
		s, ok := readSignalState(pid, syscall.SIGTERM)
		if !ok || !s.preExec || time.Now().After(deadline) {
			return
		}
		select {
		case <-done:
			return
		case <-time.After(delay):
		}
		if delay < 20*time.Millisecond {
			delay *= 2
		}
	}
}

// redeliver re-sends sig to the init once the init catches or blocks it,
// if it was sent while the kernel would have discarded it. It returns when
// it has, when the init cannot take it any more, or when stop closes.
func (c *Container) redeliver(pid int, sig syscall.Signal, stop <-chan struct{}) {
	delay := 10 * time.Millisecond
	for {
		t := time.NewTimer(delay)
		select {
		case <-stop:
			t.Stop()
			return
		case <-c.done:
			t.Stop()
			return
		case <-t.C:
		}
		s, ok := readSignalState(pid, sig)
		if !ok {
			return
		}
		if s.caught || s.blocked {
			c.Signal(sig)
			return
		}
		if s.ignored {
			return
		}
		if delay < 500*time.Millisecond {
			delay *= 2
		}
	}
}
