package monitor

import (
	"time"

	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
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
	ReasonCompleted = proto.ReasonCompleted
	ReasonError     = proto.ReasonError
	ReasonOOMKilled = proto.ReasonOOMKilled
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

// statusOf is the status that r, status.json, records.
func statusOf(r *proto.StatusRecord) Status {
	s := Status{State: StateCreated, Pid: r.InitPid, CreatedAt: r.CreatedAt, StartedAt: r.StartedAt}
	if !r.StartedAt.IsZero() {
		s.State = StateRunning
	}
	return s
}

func (s *Status) applyExit(e *proto.ExitRecord) {
	s.State = StateExited
	s.FinishedAt = e.FinishedAt
	s.ExitCode = e.ExitCode
	s.OOMKilled = e.OOMKilled
	s.Reason = e.Reason
	s.Message = e.Message
}
