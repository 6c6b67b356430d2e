package proto

// SyncFd is the fd on which a new monitor reports the outcome of creating
// the container (a pipe the daemon passes as ExtraFiles[0]).
const SyncFd = 3

// GoFd is the fd on which a new monitor waits, before it starts the
// container's init, for the daemon's go-ahead: one byte once the daemon has
// moved it into its leaf cgroup (Config.MonitorCgroup), which it does while
// the monitor starts up. End of file without the byte aborts the create.
const GoFd = 4

// SyncResult is the single JSON message sent over the sync pipe.
type SyncResult struct {
	Error string `json:"error,omitempty"`
	// Marks are the ends of the create's steps, when Config.Phases asked.
	Marks []Mark `json:"marks,omitempty"`
}

// Mark is when a step ended, in Unix nanoseconds (the wall clock both
// processes share).
type Mark struct {
	Name string `json:"name"`
	At   int64  `json:"at"`
}
