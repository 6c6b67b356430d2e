package process

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/crisp-runtime/crisp/container/crilog"
	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
)

// output is one stream of container output the monitor reads: a pipe (or
// the pty master) whose bytes go to the CRI log and to attached clients.
type output struct {
	f     *os.File
	frame byte // proto.FrameStdout or proto.FrameStderr
	log   *crilog.Stream
}

func streamFrame(s crilog.StreamType) byte {
	if s == crilog.Stderr {
		return proto.FrameStderr
	}
	return proto.FrameStdout
}

// readBufSize is the read size per stream. A pipe holds 64 KiB; smaller
// reads only mean more wakeups, and this memory is paid per container.
const readBufSize = 8 << 10

// pump copies one output to the log and the hub until EOF (all writers,
// i.e. all container processes holding the stream, are gone) or until a
// read deadline set at exit. The container never waits on a slow client:
// the hub drops data rather than block.
func (m *monitor) pump(o output, wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, readBufSize)
	for {
		n, err := o.f.Read(buf)
		if n > 0 {
			o.log.Write(buf[:n])
			m.hub.broadcast(o.frame, buf[:n])
		}
		if err != nil {
			// EIO is how a pty master reports that the last slave closed.
			if err != io.EOF && !errors.Is(err, syscall.EIO) && !errors.Is(err, os.ErrDeadlineExceeded) {
				m.logf("read container output: %v", err)
			}
			o.log.Close()
			return
		}
	}
}

// stdinMu serializes writes from different attach clients so their data
// does not interleave mid-frame.
var stdinMu sync.Mutex

// writeStdin forwards client input to the container. It may block if the
// container does not read its stdin; that only stalls this client.
func (m *monitor) writeStdin(p []byte) error {
	stdinMu.Lock()
	defer stdinMu.Unlock()
	if m.stdin == nil {
		return errors.New("container has no stdin")
	}
	_, err := m.stdin.Write(p)
	return err
}

// closeStdin closes the container's stdin (StdinOnce). With a TTY there is
// no separate stdin to close; the terminal stays.
func (m *monitor) closeStdin() {
	stdinMu.Lock()
	defer stdinMu.Unlock()
	if m.stdin != nil && m.console == nil {
		m.stdin.Close()
		m.stdin = nil
	}
}
