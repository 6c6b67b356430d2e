package proto

import "time"

// StatusRecord is status.json, written by the monitor after the container
// was created and again when it was started. Start times (clock ticks since
// boot, /proc/<pid>/stat field 22, see ReadProcStat) tell a live process
// from a reused pid.
type StatusRecord struct {
	MonitorPid       int    `json:"monitor_pid"`
	MonitorStartTime uint64 `json:"monitor_start_time"`
	InitPid          int    `json:"init_pid"`
	InitStartTime    uint64 `json:"init_start_time"`
	// BootID (internal/bootid) tells the pids of this boot from the same
	// pids, started at the same tick, of a later one. Empty in records of
	// monitors started before it was recorded.
	BootID    string    `json:"boot_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	StartedAt time.Time `json:"started_at,omitzero"`
}

// ExitRecord is exit.json, written by the monitor once the container init
// has exited and its output was drained to the log.
type ExitRecord struct {
	ExitCode   int       `json:"exit_code"`
	Signal     int       `json:"signal,omitempty"` // set if killed by a signal
	FinishedAt time.Time `json:"finished_at"`
	OOMKilled  bool      `json:"oom_killed,omitempty"`
	Reason     string    `json:"reason"`
	Message    string    `json:"message,omitempty"`
}

// Exit reasons in ExitRecord.Reason, as the kubelet expects them in
// ContainerStatus.Reason.
const (
	ReasonCompleted = "Completed"
	ReasonError     = "Error"
	ReasonOOMKilled = "OOMKilled"
)
