package streaming

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/net/websocket"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
)

// client-go's websocket port forwarding (kubectl since 1.31, critest
// -websocket-portforward) tunnels a SPDY session through a websocket whose
// subprotocol is "SPDY/3.1+portforward.k8s.io". The library knows only the
// SPDY upgrade, so the tunnel is handed to it as a SPDY upgrade request
// whose hijacked connection is the websocket: its token check, protocol
// handshake and port-forward streams stay the library's.

// tunnelPortForward serves a tunneled port-forward session; ok is false
// when r asks for no tunnel this server knows.
func (s *Server) tunnelPortForward(w http.ResponseWriter, r *http.Request) (ok bool) {
	var subprotocol string
	for p := range strings.SplitSeq(r.Header.Get("Sec-WebSocket-Protocol"), ",") {
		if p = strings.TrimSpace(p); p == portforward.WebsocketsSPDYTunnelingPortForwardV1 {
			subprotocol = p
		}
	}
	if subprotocol == "" {
		return false
	}
	spdyReq := r.Clone(r.Context())
	spdyReq.Header.Set("Upgrade", "SPDY/3.1")
	spdyReq.Header.Set("X-Stream-Protocol-Version", strings.TrimPrefix(subprotocol, portforward.WebsocketsSPDYTunnelingPrefix))
	tw := &tunnelWriter{w: w, r: r, subprotocol: subprotocol, header: http.Header{}}
	s.lib.ServeHTTP(tw, spdyReq)
	tw.finish()
	return true
}

// tunnelWriter is the response writer the library upgrades: a refusal
// (bad token, bad protocol) goes to the client as a plain HTTP answer, and
// the hijack accepts the websocket.
type tunnelWriter struct {
	w           http.ResponseWriter
	r           *http.Request
	subprotocol string
	header      http.Header
	switching   bool
	conn        *tunnelConn
	served      chan struct{} // closed when the websocket server returns
}

func (t *tunnelWriter) Header() http.Header { return t.header }

func (t *tunnelWriter) WriteHeader(code int) {
	if code == http.StatusSwitchingProtocols {
		// The websocket handshake is the switch; the SPDY one is not sent.
		t.switching = true
		return
	}
	for k, v := range t.header {
		t.w.Header()[k] = v
	}
	t.w.WriteHeader(code)
}

func (t *tunnelWriter) Write(p []byte) (int, error) {
	if t.switching {
		return len(p), nil
	}
	return t.w.Write(p)
}

func (t *tunnelWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conns := make(chan *tunnelConn, 1)
	t.served = make(chan struct{})
	srv := websocket.Server{
		Handshake: func(c *websocket.Config, _ *http.Request) error {
			c.Protocol = []string{t.subprotocol}
			return nil
		},
		Handler: func(ws *websocket.Conn) {
			ws.PayloadType = websocket.BinaryFrame
			c := &tunnelConn{Conn: ws, closed: make(chan struct{})}
			conns <- c
			<-c.closed
		},
	}
	go func() {
		defer close(t.served)
		srv.ServeHTTP(t.w, t.r)
	}()
	select {
	case c := <-conns:
		t.conn = c
		return c, bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c)), nil
	case <-t.served:
		return nil, nil, errWebsocketHandshake
	}
}

var errWebsocketHandshake = errors.New("websocket handshake failed")

// finish ends the websocket once the library is done with the session.
func (t *tunnelWriter) finish() {
	if t.conn != nil {
		t.conn.Close()
	}
	if t.served != nil {
		<-t.served
	}
}

// tunnelConn is the websocket as the SPDY session's connection; closing it
// lets the websocket server's handler return.
type tunnelConn struct {
	*websocket.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *tunnelConn) Close() error {
	var err error
	c.once.Do(func() {
		err = c.Conn.Close()
		close(c.closed)
	})
	return err
}
