package monitor

import (
	"io"
	"os"
	"sync"
	"time"

	"github.com/opencontainers/runc/libcontainer"

	"github.com/crisp-runtime/crisp/container/monitor/internal/libct"
	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
)

// execIO wires an exec'd process's stdio to the caller's streams through
// pipes (or a pty) that we own, so that waiting for the process never
// depends on the caller's readers, unlike exec.Cmd's copying.
type execIO struct {
	// The process's ends, given to it and closed after start: stdin,
	// stdout, stderr, or the console socket (child end) with a tty.
	in, out, errOut, consoleChild *os.File
	theirs                        []*os.File
	ours                          []*os.File
	console                       *os.File
	sock                          *os.File // console socket, parent end
	wg                            sync.WaitGroup
	stdinW                        *os.File
	outR                          []*os.File
	outW                          []io.Writer

	doneOnce sync.Once
	done     chan struct{}
}

func (e *execIO) setup(stdin io.Reader, stdout, stderr io.Writer, tty bool) error {
	if tty {
		parent, child, err := libct.NewConsoleSocketPair()
		if err != nil {
			return err
		}
		e.sock, e.consoleChild = parent, child
		e.ours = append(e.ours, parent)
		e.theirs = append(e.theirs, child)
		return nil
	}
	if stdin != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		e.theirs, e.ours = append(e.theirs, r), append(e.ours, w)
		e.stdinW, e.in = w, r
	}
	for i, w := range []io.Writer{stdout, stderr} {
		if w == nil {
			continue
		}
		r, pw, err := os.Pipe()
		if err != nil {
			return err
		}
		e.theirs, e.ours = append(e.theirs, pw), append(e.ours, r)
		e.outR, e.outW = append(e.outR, r), append(e.outW, w)
		if i == 0 {
			e.out = pw
		} else {
			e.errOut = pw
		}
	}
	return nil
}

// attach gives the process's ends to a libcontainer process.
func (e *execIO) attach(p *libcontainer.Process) {
	if e.consoleChild != nil {
		p.ConsoleSocket = e.consoleChild
		return
	}
	// Only ends that exist: a nil *os.File in an io.Writer is not nil.
	if e.in != nil {
		p.Stdin = e.in
	}
	if e.out != nil {
		p.Stdout = e.out
	}
	if e.errOut != nil {
		p.Stderr = e.errOut
	}
}

// request describes the process's ends in r and returns them in the order
// the monitor expects them (proto.ExecRequest).
func (e *execIO) request(r *proto.ExecRequest) []*os.File {
	if e.consoleChild != nil {
		return []*os.File{e.consoleChild}
	}
	var files []*os.File
	for _, s := range []struct {
		f  *os.File
		on *bool
	}{{e.in, &r.Stdin}, {e.out, &r.Stdout}, {e.errOut, &r.Stderr}} {
		if s.f != nil {
			*s.on = true
			files = append(files, s.f)
		}
	}
	return files
}

// started closes the process's ends and starts copying.
func (e *execIO) started(stdin io.Reader, stdout io.Writer, resize <-chan TermSize) error {
	for _, f := range e.theirs {
		f.Close()
	}
	e.theirs = nil
	if e.sock != nil {
		con, err := libct.RecvConsole(e.sock)
		if err != nil {
			return err
		}
		e.console = con
		e.ours = append(e.ours, con)
		e.stdinW = con
		if stdout != nil {
			e.outR, e.outW = []*os.File{con}, []io.Writer{stdout}
		}
		if resize != nil {
			go func() {
				for s := range resize {
					if libct.SetWinsize(con, s.Width, s.Height) != nil {
						return
					}
				}
			}()
		}
	}
	for i := range e.outR {
		e.wg.Add(1)
		go func(r *os.File, w io.Writer) {
			defer e.wg.Done()
			// A pty master reports EIO once the last slave is closed;
			// that is the end of the stream, not an error.
			io.Copy(w, r)
		}(e.outR[i], e.outW[i])
	}
	if stdin != nil && e.stdinW != nil {
		// This goroutine may stay blocked on the caller's reader after
		// the process exited; it ends when that reader returns.
		w := e.stdinW
		go func() {
			io.Copy(w, stdin)
			if e.console == nil {
				w.Close()
			}
		}()
	}
	return nil
}

func (e *execIO) outputDone() <-chan struct{} {
	e.doneOnce.Do(func() {
		e.done = make(chan struct{})
		go func() { e.wg.Wait(); close(e.done) }()
	})
	return e.done
}

// drain waits up to d for the output to end, then closes our ends of the
// streams and waits for the copiers, which then stop at once: the caller's
// writers must not be written after Exec returned.
func (e *execIO) drain(d time.Duration) {
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-e.outputDone():
			return
		case <-t.C:
		}
	}
	for _, f := range e.outR {
		f.Close()
	}
	<-e.outputDone()
}

func (e *execIO) closeAll() {
	for _, f := range e.theirs {
		f.Close()
	}
	// Closing the stdin pipe also ends a stdin copier still blocked on
	// the caller's reader at its next write.
	for _, f := range e.ours {
		f.Close()
	}
}
