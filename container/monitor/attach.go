package monitor

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
	"github.com/crisp-runtime/crisp/internal/timeouts"
)

// TermSize is a terminal size in characters.
type TermSize struct {
	Width, Height uint16
}

// dialMonitor connects to the monitor's attach socket.
func (c *Container) dialMonitor(ctx context.Context) (*net.UnixConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.cfg.SocketPath())
	if err != nil {
		return nil, fmt.Errorf("connect to container monitor: %w", err)
	}
	return conn.(*net.UnixConn), nil
}

// control sends one command to the monitor and returns its reply text.
func (c *Container) control(ctx context.Context, cmd string) (string, error) {
	conn, err := c.dialMonitor(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if err := proto.WriteFrame(conn, proto.FrameControl, []byte(cmd)); err != nil {
		return "", err
	}
	typ, p, err := proto.ReadFrame(conn, nil)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("container monitor: %w", err)
	}
	return proto.ParseReply(typ, p)
}

// Start lets the created container's init exec the user process.
func (c *Container) Start() error {
	if st := c.Status().State; st != StateCreated {
		return fmt.Errorf("cannot start container %s in state %s", c.cfg.ID, st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeouts.MonitorStart)
	defer cancel()
	text, err := c.control(ctx, proto.CmdStart)
	if err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339Nano, text)
	if err != nil {
		return fmt.Errorf("container monitor: bad start time %q", text)
	}
	c.mu.Lock()
	c.rec.StartedAt = t
	// A process that exits at once may have been seen exiting already.
	if c.status.StartedAt.IsZero() {
		c.status.StartedAt = t
	}
	if c.status.State == StateCreated {
		c.status.State = StateRunning
	}
	c.mu.Unlock()
	return nil
}

// ReopenLog makes the monitor reopen the CRI log file, after the kubelet
// renamed it for rotation.
func (c *Container) ReopenLog() error {
	if !c.running() {
		return ErrNotRunning
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeouts.MonitorControl)
	defer cancel()
	_, err := c.control(ctx, proto.CmdReopenLog)
	return err
}

// Attach connects the caller's streams to the running container: live
// output (from now on) goes to stdout/stderr, stdin (if not nil, and the
// container was created with Stdin) to the container. With a TTY all
// output arrives on stdout. Attach returns nil when the container exits,
// or ctx's error when ctx ends. Being slow to read stdout/stderr loses
// output rather than slowing the container down.
func (c *Container) Attach(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, resize <-chan TermSize) error {
	if st := c.Status().State; st != StateRunning && st != StateCreated {
		return ErrNotRunning
	}
	conn, err := c.dialMonitor(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var flags byte
	if stdin != nil {
		flags |= proto.HelloStdin
	}
	var wmu sync.Mutex // frames from the stdin and resize goroutines
	send := func(typ byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return proto.WriteFrame(conn, typ, p)
	}
	if err := send(proto.FrameHello, []byte{flags}); err != nil {
		return err
	}
	r := bufio.NewReaderSize(conn, 32<<10)
	typ, p, err := proto.ReadFrame(r, nil)
	if err != nil {
		return fmt.Errorf("container monitor: %w", err)
	}
	if _, err := proto.ParseReply(typ, p); err != nil {
		return err
	}

	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := stdin.Read(buf)
				if n > 0 && send(proto.FrameStdin, buf[:n]) != nil {
					return
				}
				if err != nil {
					send(proto.FrameStdinEOF, nil)
					return
				}
			}
		}()
	}
	if resize != nil {
		go func() {
			for {
				select {
				case s, ok := <-resize:
					if !ok {
						return
					}
					var b [4]byte
					binary.BigEndian.PutUint16(b[0:], s.Width)
					binary.BigEndian.PutUint16(b[2:], s.Height)
					if send(proto.FrameResize, b[:]) != nil {
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}

	buf := make([]byte, 32<<10)
	for {
		typ, p, err := proto.ReadFrame(r, buf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err == io.EOF {
				return nil // the container exited
			}
			return fmt.Errorf("container monitor: %w", err)
		}
		var w io.Writer
		switch typ {
		case proto.FrameStdout:
			w = stdout
		case proto.FrameStderr:
			w = stderr
		}
		if w != nil {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
	}
}
