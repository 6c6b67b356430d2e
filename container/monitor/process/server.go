package process

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"github.com/crisp-runtime/crisp/container/monitor/internal/libct"
	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
	"github.com/crisp-runtime/crisp/internal/failpoint"
)

// clientQueueMax bounds the output queued for one attached client. A client
// that does not keep up loses output beyond this; the container is never
// slowed down by it.
const clientQueueMax = 128 << 10

// hub fans container output out to attached clients.
type hub struct {
	mu      sync.Mutex
	clients map[*client]struct{}
	closed  bool
}

type client struct {
	conn *net.UnixConn

	mu      sync.Mutex
	queue   []byte // encoded frames not yet written
	closing bool
	dropped int

	wake chan struct{} // capacity 1: "queue or closing changed"
	done chan struct{} // closed when the writer has finished
}

func newHub() *hub { return &hub{clients: make(map[*client]struct{})} }

func (h *hub) add(c *client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.clients[c] = struct{}{}
	return true
}

func (h *hub) remove(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

func (h *hub) broadcast(typ byte, p []byte) {
	h.mu.Lock()
	for c := range h.clients {
		c.enqueue(typ, p)
	}
	h.mu.Unlock()
}

// close flushes what is queued for every client (bounded by timeout) and
// disconnects them.
func (h *hub) close(timeout time.Duration) {
	h.mu.Lock()
	h.closed = true
	clients := make([]*client, 0, len(h.clients))
	for c := range h.clients {
		clients = append(clients, c)
	}
	h.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for _, c := range clients {
		c.conn.SetWriteDeadline(deadline)
		c.shutdown()
	}
	for _, c := range clients {
		<-c.done
		c.conn.Close()
	}
}

func (c *client) enqueue(typ byte, p []byte) {
	c.mu.Lock()
	if len(c.queue)+proto.FrameHeaderLen+len(p) > clientQueueMax {
		c.dropped += len(p)
	} else {
		c.queue = proto.AppendFrame(c.queue, typ, p)
	}
	c.mu.Unlock()
	c.poke()
}

func (c *client) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// shutdown asks the writer to flush and stop.
func (c *client) shutdown() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.poke()
}

// writer sends queued frames to the client. It swaps the queue out under
// the lock and writes without holding it, so broadcast never waits on the
// socket.
func (c *client) writer() {
	defer close(c.done)
	var out []byte
	for {
		c.mu.Lock()
		out, c.queue = c.queue, out[:0]
		closing := c.closing
		c.mu.Unlock()
		if len(out) > 0 {
			if _, err := c.conn.Write(out); err != nil {
				c.conn.CloseRead() // make the reader side give up too
				return
			}
			if cap(out) > 16<<10 {
				out = nil // do not pin a large buffer for an idle client
			}
			continue
		}
		if closing {
			return
		}
		<-c.wake
	}
}

func (m *monitor) listen() error {
	path := m.cfg.SocketPath()
	if err := os.MkdirAll(m.cfg.StateDir, 0o700); err != nil {
		return err
	}
	os.Remove(path) // stale socket of a previous monitor
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return err
	}
	// The socket file is removed explicitly at exit; Close must not
	// remove a socket that a successor may have created.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	m.ln = ln
	m.hub = newHub()
	return nil
}

func (m *monitor) serve() {
	for {
		conn, err := m.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.logf("accept: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go m.handle(conn)
	}
}

func (m *monitor) handle(conn *net.UnixConn) {
	// A client that connects and says nothing must not pin a goroutine.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, p, err := proto.ReadFrame(conn, nil)
	if err != nil {
		conn.Close()
		return
	}
	conn.SetReadDeadline(time.Time{})
	switch typ {
	case proto.FrameControl:
		// "error": answer as a monitor of a version without exec does.
		if cmd := string(p); cmd == proto.CmdExec && failpoint.Hit("monitor/exec-unknown") == nil {
			m.serveExec(conn) // holds controlMu while it starts the process
		} else {
			m.control(conn, cmd)
		}
	case proto.FrameHello:
		m.attach(conn, len(p) > 0 && p[0]&proto.HelloStdin != 0)
	default:
		conn.Close()
	}
}

// control serves a one-shot command.
func (m *monitor) control(conn *net.UnixConn, cmd string) {
	defer conn.Close()
	// The exit path waits for in-flight commands, so that e.g. the
	// reply to a start is not lost when the container exits at once.
	m.controlMu.RLock()
	defer m.controlMu.RUnlock()
	var text string
	var err error
	switch cmd {
	case proto.CmdStart:
		var t time.Time
		if t, err = m.start(); err == nil {
			text = t.Format(time.RFC3339Nano)
		}
	case proto.CmdReopenLog:
		err = m.logw.Reopen()
	default:
		err = proto.UnknownCommand(cmd)
	}
	proto.WriteFrame(conn, proto.FrameReply, proto.ReplyPayload(err, text))
}

// stdinOnce makes StdinOnce close the container's stdin only once.
var stdinOnce sync.Once

// attach serves an attached client: live output out, stdin and resize in.
func (m *monitor) attach(conn *net.UnixConn, wantStdin bool) {
	c := &client{conn: conn, wake: make(chan struct{}, 1), done: make(chan struct{})}
	// The reply goes out before any output so that the client knows from
	// which point on it receives the stream.
	c.queue = proto.AppendFrame(nil, proto.FrameReply, proto.ReplyPayload(nil, ""))
	if !m.hub.add(c) {
		conn.Close()
		return
	}
	go c.writer()
	stdin := wantStdin && m.cfg.Stdin
	detach := func() {
		if stdin && m.cfg.StdinOnce {
			stdinOnce.Do(m.closeStdin)
		}
		stdin = false
	}
	buf := make([]byte, 4096)
	for {
		typ, p, err := proto.ReadFrame(conn, buf)
		if err != nil {
			break
		}
		switch typ {
		case proto.FrameStdin:
			if stdin {
				if err := m.writeStdin(p); err != nil {
					stdin = false
				}
			}
		case proto.FrameStdinEOF:
			detach()
		case proto.FrameResize:
			if m.console != nil && len(p) == 4 {
				libct.SetWinsize(m.console, uint16(p[0])<<8|uint16(p[1]), uint16(p[2])<<8|uint16(p[3]))
			}
		}
	}
	detach()
	m.hub.remove(c)
	c.shutdown()
	<-c.done
	conn.Close()
	if c.dropped > 0 {
		m.logf("attach client was too slow: dropped %d bytes of output", c.dropped)
	}
}
