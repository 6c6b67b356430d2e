package streaming

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// pipeStream is the server's end of a client stream with SPDY's semantics:
// Close ends only the server-to-client direction.
type pipeStream struct {
	fromClient *io.PipeReader
	toClient   *io.PipeWriter
}

func (p *pipeStream) Read(b []byte) (int, error)  { return p.fromClient.Read(b) }
func (p *pipeStream) Write(b []byte) (int, error) { return p.toClient.Write(b) }
func (p *pipeStream) Close() error                { return p.toClient.Close() }

// client is the other end: write to w (Close is the client's half-close),
// read from r.
type client struct {
	w *io.PipeWriter
	r *io.PipeReader
}

func newPipeStream(t *testing.T) (*pipeStream, *client) {
	cr, sw := io.Pipe()
	sr, cw := io.Pipe()
	t.Cleanup(func() { cw.Close(); cr.Close() })
	return &pipeStream{fromClient: sr, toClient: sw}, &client{w: cw, r: cr}
}

// podConn returns the proxy's end of a TCP connection whose other end is
// handled by serve, standing in for the pod's server.
func podConn(t *testing.T, serve func(c *net.TCPConn)) *net.TCPConn {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		serve(c.(*net.TCPConn))
	}()
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn)
}

func runProxy(ctx context.Context, s *pipeStream, c *net.TCPConn, idle time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() { done <- proxy(ctx, s, c, idle) }()
	return done
}

func waitErr(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("proxy did not return")
		return nil
	}
}

// A server that answers only after the whole request (EOF) must get the
// client's half-close and still be able to answer.
func TestProxyPassesHalfCloseToPod(t *testing.T) {
	s, cl := newPipeStream(t)
	conn := podConn(t, func(c *net.TCPConn) {
		req, _ := io.ReadAll(c)
		c.Write(bytes.ToUpper(req))
	})
	done := runProxy(context.Background(), s, conn, time.Minute)

	cl.w.Write([]byte("hello"))
	cl.w.Close()
	got, err := io.ReadAll(cl.r)
	if err != nil || string(got) != "HELLO" {
		t.Fatalf("got %q, %v", got, err)
	}
	if err := waitErr(t, done); err != nil {
		t.Fatal(err)
	}
}

// When the pod's side ends, the forward ends at once even though the client
// has not closed its side: clients wait for that before they close theirs.
func TestProxyEndsWhenPodCloses(t *testing.T) {
	s, cl := newPipeStream(t)
	conn := podConn(t, func(c *net.TCPConn) { c.Write([]byte("bye")) })
	done := runProxy(context.Background(), s, conn, time.Minute)

	got, err := io.ReadAll(cl.r)
	if err != nil || string(got) != "bye" {
		t.Fatalf("got %q, %v", got, err)
	}
	if err := waitErr(t, done); err != nil {
		t.Fatal(err)
	}
}

func TestProxyLongExchange(t *testing.T) {
	s, cl := newPipeStream(t)
	conn := podConn(t, func(c *net.TCPConn) { io.Copy(c, c) }) // echo
	done := runProxy(context.Background(), s, conn, time.Minute)

	payload := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB, many chunks
	go func() { cl.w.Write(payload); cl.w.Close() }()
	got, err := io.ReadAll(cl.r)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("echoed %d bytes of %d, %v", len(got), len(payload), err)
	}
	if err := waitErr(t, done); err != nil {
		t.Fatal(err)
	}
}

func TestProxyIdleTimeout(t *testing.T) {
	s, _ := newPipeStream(t)
	conn := podConn(t, func(c *net.TCPConn) { io.Copy(io.Discard, c) })
	err := waitErr(t, runProxy(context.Background(), s, conn, 200*time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "idle") {
		t.Fatalf("want an idle error, got %v", err)
	}
}

func TestProxyCancel(t *testing.T) {
	s, _ := newPipeStream(t)
	conn := podConn(t, func(c *net.TCPConn) { io.Copy(io.Discard, c) })
	ctx, cancel := context.WithCancel(context.Background())
	done := runProxy(ctx, s, conn, time.Minute)
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := waitErr(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}
