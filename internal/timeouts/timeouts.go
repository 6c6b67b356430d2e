// Package timeouts holds the fixed deadlines of crisp's daemon in one place,
// each with the reason for its value, like containerd's pkg/timeout. The
// configurable ones (image pull progress, streaming idle and creation, NRI
// plugin calls) are in config; polling intervals and the monitor process's
// own timings stay next to their loops.
//
// # Cancellation policy
//
// Which context an operation runs on follows one rule: a CRI call that
// changes state leaves it whole — done, or rolled back — whatever happens
// to the client's RPC. kubelet's runtime calls time out after two minutes
// and are retried with the same names, so a half-made pod or container
// would block or confuse the retry.
//
//   - Work whose result kubelet adopts on its retry runs to completion on a
//     context detached from the client (context.WithoutCancel), bounded by
//     crisp's own deadline below: RunPodSandbox ([PodRun]; the retry lists
//     the ready pod and uses it instead of making another, so abandoning
//     the CNI ADD half way would only make it start over).
//   - Work whose result kubelet would not adopt follows the client's
//     deadline and rolls back when it passes: CreateContainer (a container
//     kubelet never got the ID of is not started by it — the retry is a new
//     attempt — so finishing it would leave an orphan for garbage
//     collection); [ContainerCreate] applies only when the client set no
//     deadline. PullImage follows the client too: the layers fetched so far
//     stay in the store, so a retry resumes rather than restarts.
//   - Rollback, stop, teardown and removal run detached from the client
//     ([Cleanup], [NetworkTeardown], [StopSlack], [NRIUndo]): the caller's
//     cancellation may be the very reason for the cleanup, and a stop that
//     gave up half way would leave processes or an IP behind.
//   - Everything else (reads, ExecSync, streaming URLs) follows the client.
package timeouts

import "time"

const (
	// PodRun bounds RunPodSandbox, which is detached from the client: twice
	// kubelet's two-minute runtime timeout, so a slow CNI ADD finishes for
	// the retry to find.
	PodRun = 4 * time.Minute
	// ContainerCreate bounds the monitor's create when the client set no
	// deadline (kubelet always sets one).
	ContainerCreate = 4 * time.Minute
	// Cleanup bounds each rollback or teardown step of a pod; it runs on a
	// fresh context because the caller's may be why we are cleaning up.
	Cleanup = 2 * time.Minute

	// NetworkSetup bounds a CNI ADD when the caller's context has no deadline.
	NetworkSetup = 3 * time.Minute
	// NetworkTeardown bounds a CNI DEL. It is independent of the caller's
	// context: a StopPodSandbox whose client went away must still release
	// the IP, or the address leaks until the next GC.
	NetworkTeardown = 2 * time.Minute
	// NetworkValidate bounds the CNI VERSION calls that validate a
	// configuration.
	NetworkValidate = 10 * time.Second

	// NamespaceSpawn bounds the set-up of a pod's namespace holder; it does a
	// handful of syscalls.
	NamespaceSpawn = 30 * time.Second
	// ReaperStop bounds the wait for a killed pod reaper: SIGKILL is not
	// deferrable, but the kernel first kills the rest of the PID namespace.
	ReaperStop = 10 * time.Second

	// StopSlack is how long a container stop waits beyond the grace period
	// for the kill to be recorded, whatever the client's deadline: a stop the
	// client gave up on must still finish, or the container is left half
	// stopped.
	StopSlack = time.Minute
	// MonitorStart bounds a container start: the init only has to open the
	// exec fifo.
	MonitorStart = time.Minute
	// MonitorControl bounds a control request to a running container's
	// monitor that does no more than reopen a file.
	MonitorControl = 10 * time.Second
	// MonitorDestroy bounds how long removing a container waits for its
	// killed monitor to record the exit.
	MonitorDestroy = 10 * time.Second
	// InterruptedCreate bounds how long start-up waits for a monitor that
	// was still creating its container when the daemon that spawned it
	// died: the create must end (or be given up) before it can be undone.
	InterruptedCreate = time.Minute

	// NRISideEffect bounds the updates and evictions NRI plugins ask for in
	// answer to an event.
	NRISideEffect = 2 * time.Minute
	// NRIUndo bounds telling NRI plugins about a rollback, which runs on a
	// fresh context: the caller's may be why we are rolling back.
	NRIUndo = 30 * time.Second

	// StreamDial bounds one port-forward connect attempt. Every target is
	// local to the pod's namespace, so only an overloaded listener takes long.
	StreamDial = 5 * time.Second
	// StreamHeaders bounds reading a streaming request's headers: upgrade
	// requests are small, and a client that trickles them must not hold a
	// slot for long.
	StreamHeaders = 30 * time.Second
	// StreamClose bounds how long closing the streaming server waits for
	// sessions to end.
	StreamClose = 5 * time.Second

	// Shutdown bounds how long in-flight RPCs (a pull, say) may delay exit.
	Shutdown = 30 * time.Second
	// SocketProbe bounds the dial that tells a live CRI socket from a stale
	// one at start-up.
	SocketProbe = time.Second
	// TraceFlush bounds sending the last buffered spans at exit: a slow or
	// absent collector must not hold up a restart.
	TraceFlush = 5 * time.Second
)
