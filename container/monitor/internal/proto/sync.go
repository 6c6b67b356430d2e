package proto

// SyncFd is the fd on which a new monitor reports the outcome of creating
// the container (a pipe the daemon passes as ExtraFiles[0]).
const SyncFd = 3

// SyncResult is the single JSON message sent over the sync pipe.
type SyncResult struct {
	Error string `json:"error,omitempty"`
}
