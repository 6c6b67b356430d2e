package streaming

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/timeouts"
)

// resetGrace is how long the client's direction may keep running after the
// pod's side has finished. A well-behaved client closes its side as soon as
// it has seen the pod's; past this the stream is reset so the copying
// goroutine cannot outlive the connection it serves.
const resetGrace = 5 * time.Second

// portForward connects the client's stream to port in the pod and copies
// both ways until the pod's side ends.
func (s *Server) portForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	if port <= 0 || port > 65535 {
		return errdefs.InvalidArgument("port %d out of range", port)
	}
	// Looked up again (not taken from the URL request) because the pod may
	// have been stopped since: its namespace would be gone.
	pn, err := s.pods.Network(podID)
	if err != nil {
		return err
	}
	conn, err := dialPod(ctx, pn, int(port))
	if err != nil {
		return fmt.Errorf("port forward to pod %s port %d: %w", podID, port, err)
	}
	klog.V(4).InfoS("Port forward connected", "pod", podID, "port", port, "target", conn.RemoteAddr())
	return proxy(ctx, stream, conn, s.idle)
}

// dialPod connects to port on the pod's loopback, IPv4 then IPv6, then on
// its own addresses, from inside the pod's network namespace (or the
// host's, for a host-network pod). Attempts are serial, not Go's "happy
// eyeballs": its parallel attempts run on other threads, outside the
// namespace.
func dialPod(ctx context.Context, pn PodNetwork, port int) (*net.TCPConn, error) {
	targets := []string{"127.0.0.1", "::1"}
	if pn.NetNS != "" {
		// A host-network pod's IPs are the node's: loopback already
		// reaches whatever it listens on.
		targets = append(targets, pn.IPs...)
	}
	var conn net.Conn
	dial := func() error {
		d := net.Dialer{Timeout: timeouts.StreamDial}
		var errs []error
		for _, ip := range targets {
			c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err == nil {
				conn = c
				return nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		return errors.Join(errs...)
	}
	var err error
	if pn.NetNS == "" {
		err = dial()
	} else {
		err = inNetNS(pn.NetNS, dial)
	}
	if err != nil {
		if conn != nil {
			// Connected, but the thread could not return home.
			conn.Close()
		}
		return nil, err
	}
	return conn.(*net.TCPConn), nil
}

// proxy copies between the client's stream and the pod's connection. The
// client finishing its side (EOF) is passed on as a half-close, so that a
// server that answers after reading everything still can; the pod finishing
// its side ends the forward, because the client waits for that before it
// closes its own side. Neither direction may be idle for longer than idle.
func proxy(ctx context.Context, stream io.ReadWriteCloser, conn *net.TCPConn, idle time.Duration) error {
	var closeOnce sync.Once
	closeAll := func() {
		closeOnce.Do(func() {
			conn.Close()
			stream.Close()
		})
	}
	defer closeAll()
	conn.SetReadDeadline(time.Now().Add(idle))

	up := make(chan error, 1)   // client to pod
	down := make(chan error, 1) // pod to client
	go func() {
		err := copyRefreshing(conn, stream, conn, idle)
		if err == nil {
			err = conn.CloseWrite()
		}
		up <- err
	}()
	go func() {
		down <- copyRefreshing(stream, conn, conn, idle)
	}()

	var err error
	select {
	case err = <-down:
		// Closing the stream tells the client the pod is done; the pod may
		// not read the rest of what the client sends anyway.
		closeAll()
		go reapUp(up, stream)
		if isDeadline(err) {
			return fmt.Errorf("idle for %v", idle)
		}
		return err
	case err = <-up:
		if err != nil {
			closeAll()
			<-down
			return err
		}
		// Half-closed towards the pod: let it finish its answer.
		select {
		case err = <-down:
		case <-ctx.Done():
			closeAll()
			<-down
			return ctx.Err()
		}
		if isDeadline(err) {
			return fmt.Errorf("idle for %v", idle)
		}
		return err
	case <-ctx.Done():
		closeAll()
		<-down
		go reapUp(up, stream)
		return ctx.Err()
	}
}

// reapUp waits for the client-to-pod copy, which blocks in a read from the
// client, and resets the stream if the client does not close its side.
// Resetting unblocks SPDY streams; a websocket stream's read already ended
// when it was closed.
func reapUp(up <-chan error, stream io.ReadWriteCloser) {
	t := time.NewTimer(resetGrace)
	defer t.Stop()
	select {
	case <-up:
	case <-t.C:
		if r, ok := stream.(interface{ Reset() error }); ok {
			r.Reset()
		}
		<-up
	}
}

// copyRefreshing copies src to dst and pushes conn's read deadline forward
// on every chunk: traffic in either direction keeps a forward alive. A clean
// EOF from src is nil.
func copyRefreshing(dst io.Writer, src io.Reader, conn *net.TCPConn, idle time.Duration) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			conn.SetReadDeadline(time.Now().Add(idle))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func isDeadline(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
