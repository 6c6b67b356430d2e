package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/internal/procexit"
)

// procStartTime is field 22 of /proc/<pid>/stat, the start time in clock
// ticks since boot: with the PID it identifies a process across restarts.
func procStartTime(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces and parentheses; the
	// fields after it start after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	fields := bytes.Fields(data[i+1:])
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	return strconv.ParseUint(string(fields[19]), 10, 64)
}

// processExit is closed when a watched process has exited.
type processExit chan struct{}

// watchProcess reports the exit of r's process through the runtime's
// netpoller (a non-blocking pidfd), so watching a hundred reapers costs no
// threads. cmd, when the daemon itself started the process, is waited for
// once it exited so that it does not stay a zombie. A process that is gone
// already, or whose PID now belongs to another process, is reported exited.
func watchProcess(r Reaper, cmd *exec.Cmd) processExit {
	done := make(processExit)
	fd, err := unix.PidfdOpen(r.PID, unix.PIDFD_NONBLOCK)
	if err != nil {
		if cmd != nil {
			go func() { _ = cmd.Wait(); close(done) }()
		} else {
			close(done)
		}
		return done
	}
	// The pidfd refers to whichever process has the PID now; only the
	// start time tells it is still ours.
	if st, err := procStartTime(r.PID); err != nil || st != r.StartTime {
		unix.Close(fd)
		if cmd != nil {
			go func() { _ = cmd.Wait(); close(done) }()
		} else {
			close(done)
		}
		return done
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	go func() {
		defer close(done)
		defer f.Close()
		if rc, err := f.SyscallConn(); err == nil {
			// A pidfd becomes readable when the process exits; returning
			// false parks this goroutine in the netpoller until then.
			_ = rc.Read(func(fd uintptr) bool {
				exited, err := procexit.Exited(fd)
				return err != nil || exited
			})
		}
		if cmd != nil {
			_ = cmd.Wait()
		}
	}()
	return done
}

// signalProcess sends sig to r's process if it is still the same process;
// pidfd_send_signal makes the check and the kill race-free.
func signalProcess(r Reaper, sig unix.Signal) error {
	fd, err := unix.PidfdOpen(r.PID, 0)
	if err != nil {
		if err == unix.ESRCH {
			return nil
		}
		return err
	}
	defer unix.Close(fd)
	if st, err := procStartTime(r.PID); err != nil || st != r.StartTime {
		return nil
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && err != unix.ESRCH {
		return err
	}
	return nil
}
