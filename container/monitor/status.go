package monitor

import (
	"fmt"
	"time"
)

// State is the lifecycle state of a container as the daemon sees it.
type State int

const (
	StateUnknown State = iota
	StateCreated
	StateRunning
	StateExited
)

func (s State) String() string {
	switch s {
	case StateCreated:
		return "created"
	case StateRunning:
		return "running"
	case StateExited:
		return "exited"
	}
	return "unknown"
}

// Exit reasons, as the kubelet expects them in ContainerStatus.Reason.
const (
	ReasonCompleted = "Completed"
	ReasonError     = "Error"
	ReasonOOMKilled = "OOMKilled"
)

// Status is a snapshot of a container's state.
type Status struct {
	State      State
	Pid        int // init pid (host pid namespace)
	CreatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   int
	OOMKilled  bool
	Reason     string
	Message    string
}

// statusRecord is status.json, written by the monitor after the container
// was created and again when it was started. Start times (clock ticks since
// boot, /proc/<pid>/stat field 22) tell a live process from a reused pid.
type statusRecord struct {
	MonitorPid       int       `json:"monitor_pid"`
	MonitorStartTime uint64    `json:"monitor_start_time"`
	InitPid          int       `json:"init_pid"`
	InitStartTime    uint64    `json:"init_start_time"`
	CreatedAt        time.Time `json:"created_at"`
	StartedAt        time.Time `json:"started_at,omitzero"`
}

// exitRecord is exit.json, written by the monitor once the container init
// has exited and its output was drained to the log.
type exitRecord struct {
	ExitCode   int       `json:"exit_code"`
	Signal     int       `json:"signal,omitempty"` // set if killed by a signal
	FinishedAt time.Time `json:"finished_at"`
	OOMKilled  bool      `json:"oom_killed,omitempty"`
	Reason     string    `json:"reason"`
	Message    string    `json:"message,omitempty"`
}

func (r *statusRecord) status() Status {
	s := Status{State: StateCreated, Pid: r.InitPid, CreatedAt: r.CreatedAt, StartedAt: r.StartedAt}
	if !r.StartedAt.IsZero() {
		s.State = StateRunning
	}
	return s
}

func (s *Status) applyExit(e *exitRecord) {
	s.State = StateExited
	s.FinishedAt = e.FinishedAt
	s.ExitCode = e.ExitCode
	s.OOMKilled = e.OOMKilled
	s.Reason = e.Reason
	s.Message = e.Message
}

// exitFromWaitStatus converts the init's wait status the way shells and
// the kubelet expect: 128+n for death by signal n.
func exitFromWaitStatus(exited bool, code int, signaled bool, sig int) exitRecord {
	var e exitRecord
	switch {
	case exited:
		e.ExitCode = code
	case signaled:
		e.Signal = sig
		e.ExitCode = 128 + sig
	default:
		e.ExitCode = 255
		e.Message = "unexpected wait status"
	}
	return e
}

func (e *exitRecord) setReason(oomKilled bool) {
	e.OOMKilled = oomKilled
	switch {
	case oomKilled:
		e.Reason = ReasonOOMKilled
	case e.ExitCode == 0:
		e.Reason = ReasonCompleted
	default:
		e.Reason = ReasonError
	}
	if e.Message == "" && e.Signal != 0 {
		e.Message = fmt.Sprintf("killed by signal %d", e.Signal)
	}
}
