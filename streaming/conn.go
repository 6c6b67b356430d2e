package streaming

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
)

// Once a session's connection is upgraded (SPDY, websocket), net/http no
// longer watches it, and the request context handed to exec and attach stays
// alive after the client is gone: an exec'd "sleep" would outlive its
// client, and an attach would hold its monitor connection until the
// container printed something. goneListener's connections cancel their
// context when the client's side ends, i.e. when a read fails for any
// reason but a deadline, or the connection is closed.
type goneListener struct{ net.Listener }

func (l goneListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &goneConn{Conn: c}, nil
}

type goneConn struct {
	net.Conn
	once   sync.Once
	mu     sync.Mutex
	gone   bool
	cancel context.CancelFunc
}

func (c *goneConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	// net/http interrupts its own background read with a past deadline
	// when a handler hijacks the connection: that is no client leaving.
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		c.end()
	}
	return n, err
}

func (c *goneConn) Close() error {
	c.end()
	return c.Conn.Close()
}

func (c *goneConn) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gone = true
	if c.cancel != nil {
		c.once.Do(c.cancel)
	}
}

// connContext is http.Server.ConnContext: request contexts of c end when
// its client goes away.
func connContext(ctx context.Context, c net.Conn) context.Context {
	ctx = context.WithValue(ctx, connKey{}, c)
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	gc, ok := c.(*goneConn)
	if !ok {
		return ctx
	}
	ctx, cancel := context.WithCancel(ctx)
	gc.mu.Lock()
	defer gc.mu.Unlock()
	gc.cancel = cancel
	if gc.gone {
		gc.once.Do(cancel)
	}
	return ctx
}
