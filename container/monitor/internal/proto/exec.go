package proto

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// An exec is run by the container's monitor, which starts the process
// through its C init (package cinit) or, where that cannot, libcontainer's
// init, then the small crisp-monitor binary rather than the daemon's
// (libcontainer re-executes its caller's binary for it). On one
// connection:
//
//	daemon:  control frame CmdExec
//	daemon:  FrameExecRequest (ExecRequest JSON), the stdio fds attached
//	monitor: FrameReply: ExecStarted JSON, or the error of the start
//	monitor: FrameExecExit (ExecExit JSON) once the process has been reaped
//
// The daemon keeps the connection open while the process runs; if it goes
// away (the daemon died or gave up) the monitor kills the process. A
// monitor older than the command answers the control frame with an
// "unknown command" reply and closes: the daemon then runs the exec itself.
const (
	CmdExec = "exec"

	FrameExecRequest byte = 'X' // daemon: ExecRequest, with SCM_RIGHTS fds
	FrameExecExit    byte = 'x' // monitor: ExecExit
)

// unknownCommand starts the monitor's reply to a command it does not know;
// monitors of every version answer so.
const unknownCommand = "unknown command "

// UnknownCommand is the monitor's error for a command it does not know.
func UnknownCommand(cmd string) error { return errors.New(unknownCommand + cmd) }

// IsUnknownCommand reports whether a reply error (see ParseReply) says the
// monitor does not know the command.
func IsUnknownCommand(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), unknownCommand)
}

// forkRefused starts the monitor's reply when the limits of the cgroup it
// lives in (the pod's pids.max) refused the forks that start the exec's
// init: the daemon, which lives outside the pod, starts it instead.
const forkRefused = "exec: the pod's limits refused the monitor's fork: "

// ForkRefused is the monitor's error for such a start.
func ForkRefused(err error) error { return errors.New(forkRefused + err.Error()) }

// IsForkRefused reports whether a reply error is ForkRefused's.
func IsForkRefused(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), forkRefused)
}

// ExecRequest is the process to run. Its fds follow in the same message:
// with Tty only the console socket (libcontainer's init sends the pty
// master over it to the daemon), else the streams flagged, in the order
// stdin, stdout, stderr.
type ExecRequest struct {
	Process *specs.Process `json:"process"`
	Tty     bool           `json:"tty,omitempty"`
	Stdin   bool           `json:"stdin,omitempty"`
	Stdout  bool           `json:"stdout,omitempty"`
	Stderr  bool           `json:"stderr,omitempty"`
	// Phases asks for the start's step marks in ExecStarted.
	Phases bool `json:"phases,omitempty"`
	// GoInit asks for libcontainer's init even where the C init could
	// start the process (tests compare the two).
	GoInit bool `json:"goInit,omitempty"`
}

// Files is the number of fds that come with the request.
func (r *ExecRequest) Files() int {
	if r.Tty {
		return 1
	}
	n := 0
	for _, b := range []bool{r.Stdin, r.Stdout, r.Stderr} {
		if b {
			n++
		}
	}
	return n
}

// ExecStarted is the text of the reply once the process runs.
type ExecStarted struct {
	Pid   int    `json:"pid"`
	Marks []Mark `json:"marks,omitempty"`
}

// ExecExit is how the exec'd process ended: its wait status as wait(2)
// reports it, or why it could not be waited for.
type ExecExit struct {
	WaitStatus uint32 `json:"wait_status"`
	Error      string `json:"error,omitempty"`
}

// maxFrameFiles bounds the fds accepted with one frame.
const maxFrameFiles = 4

// WriteFrameFiles writes a frame with files attached (SCM_RIGHTS) to its
// first bytes. The frame must not share a read with bytes before it: the
// reader takes the fds with the first read that reaches into the frame.
func WriteFrameFiles(conn *net.UnixConn, typ byte, payload []byte, files []*os.File) error {
	b := AppendFrame(make([]byte, 0, FrameHeaderLen+len(payload)), typ, payload)
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	n, _, err := conn.WriteMsgUnix(b, oob, nil)
	if err != nil {
		return err
	}
	// A stream socket may take a large frame in parts; the fds went with
	// the first.
	if n < len(b) {
		_, err = conn.Write(b[n:])
	}
	return err
}

// ReadFrameFiles reads a frame written by WriteFrameFiles and the files
// attached to it. On error no file is left open.
func ReadFrameFiles(conn *net.UnixConn) (typ byte, payload []byte, files []*os.File, err error) {
	var h [FrameHeaderLen]byte
	oob := make([]byte, unix.CmsgSpace(maxFrameFiles*4))
	defer func() {
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			files = nil
		}
	}()
	got := 0
	for got < len(h) {
		// The fds arrive with the first bytes; ReadMsgUnix receives them
		// close-on-exec.
		n, oobn, flags, _, err := conn.ReadMsgUnix(h[got:], oob)
		if oobn > 0 {
			fs, perr := parseRights(oob[:oobn])
			files = append(files, fs...)
			if perr != nil {
				return 0, nil, files, perr
			}
		}
		if flags&unix.MSG_CTRUNC != 0 {
			return 0, nil, files, fmt.Errorf("attach protocol: more than %d fds with a frame", maxFrameFiles)
		}
		if err != nil {
			return 0, nil, files, err
		}
		if n == 0 {
			return 0, nil, files, io.ErrUnexpectedEOF
		}
		got += n
	}
	typ, payload, err = readPayload(conn, h, nil)
	return typ, payload, files, err
}

func parseRights(oob []byte) ([]*os.File, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("attach protocol: %w", err)
	}
	var files []*os.File
	var bad error
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			bad = fmt.Errorf("attach protocol: %w", err)
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "fd"))
		}
	}
	return files, bad
}
