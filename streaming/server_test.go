package streaming

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/metrics"
	"github.com/crisp-runtime/crisp/internal/testutil"
)

type fakePods map[string]PodNetwork

func (f fakePods) Network(id string) (PodNetwork, error) {
	// Like the sandbox manager: a prefix (here, the key) or the full ID.
	for k, pn := range f {
		if k == id || pn.ID == id {
			return pn, nil
		}
	}
	return PodNetwork{}, errdefs.NotFound("pod %q", id)
}

// fakeContainers runs "exit N" by printing its arguments and exiting N.
type fakeContainers struct{}

func (fakeContainers) Running(id string) (string, error) {
	switch id {
	case "ctr":
		return "ctr-full-id", nil
	case "stopped":
		return "", fmt.Errorf("container stopped: %w", errdefs.ErrFailedPrecondition)
	}
	return "", errdefs.NotFound("container %q", id)
}

func (fakeContainers) Exec(_ context.Context, id string, cmd []string, _ io.Reader, stdout, _ io.WriteCloser, _ bool, _ <-chan TerminalSize) (int, error) {
	fmt.Fprintf(stdout, "%s:%s", id, strings.Join(cmd, " "))
	if len(cmd) == 2 && cmd[0] == "exit" {
		return strconv.Atoi(cmd[1])
	}
	return 0, nil
}

func (fakeContainers) Attach(_ context.Context, id string, _ io.Reader, stdout, _ io.WriteCloser, _ bool, _ <-chan TerminalSize) error {
	fmt.Fprintf(stdout, "attached to %s", id)
	return nil
}

func startServer(t *testing.T, o Options) *Server {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve after Close: %v", err)
		}
	})
	return s
}

func TestListensOnLoopbackByDefault(t *testing.T) {
	s := startServer(t, Options{Pods: fakePods{}})
	a := s.Addr().(*net.TCPAddr)
	if !a.IP.Equal(net.IPv4(127, 0, 0, 1)) || a.Port == 0 {
		t.Fatalf("listening on %v", a)
	}
	if s.URL() != "http://"+a.String()+"/" {
		t.Fatalf("URL %s does not name the listener %v", s.URL(), a)
	}
	if _, err := New(Options{Pods: fakePods{}, Address: "localhost"}); err == nil {
		t.Fatal("a host name must be refused: it may resolve to any interface")
	}
}

func TestBadTokenIs404(t *testing.T) {
	s := startServer(t, Options{Pods: fakePods{"p": {ID: "p"}}})
	for _, path := range []string{"exec/AAAAAAAA", "attach/AAAAAAAA", "portforward/AAAAAAAA", "nothing"} {
		resp, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", path, resp.StatusCode)
		}
	}
	// A token is for one session only.
	pf, err := s.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: "p"})
	if err != nil {
		t.Fatal(err)
	}
	// A plain GET is no upgrade: the session fails, but the token is spent.
	resp, err := http.Get(pf.Url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.Get(pf.Url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("reused token: status %d, want 404", resp.StatusCode)
	}
}

func TestURLErrors(t *testing.T) {
	s := startServer(t, Options{Pods: fakePods{}})
	if _, err := s.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: "nope"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown pod: %v", err)
	}
	if _, err := s.GetExec(&runtimeapi.ExecRequest{ContainerId: "c", Cmd: []string{"sh"}, Stdout: true}); !errors.Is(err, errdefs.ErrUnimplemented) || !strings.Contains(err.Error(), "Exec") {
		t.Errorf("exec without a container manager: %v", err)
	}
	if _, err := s.GetAttach(&runtimeapi.AttachRequest{ContainerId: "c", Stdout: true}); !errors.Is(err, errdefs.ErrUnimplemented) || !strings.Contains(err.Error(), "Attach") {
		t.Errorf("attach without a container manager: %v", err)
	}

	s = startServer(t, Options{Pods: fakePods{}, Containers: fakeContainers{}})
	if _, err := s.GetExec(&runtimeapi.ExecRequest{ContainerId: "nope", Cmd: []string{"sh"}, Stdout: true}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown container: %v", err)
	}
	if _, err := s.GetExec(&runtimeapi.ExecRequest{ContainerId: "stopped", Cmd: []string{"sh"}, Stdout: true}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("stopped container: %v", err)
	}
	if _, err := s.GetExec(&runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"sh"}, Tty: true, Stderr: true}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("tty+stderr: %v", err)
	}
}

// spdyDial upgrades url to a SPDY connection speaking protocol, as kubectl does.
func spdyDial(t *testing.T, url, protocol string) httpstream.Connection {
	t.Helper()
	rt, err := spdy.NewRoundTripper(nil)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(httpstream.HeaderProtocolVersion, protocol)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := rt.NewConnection(resp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// spdyForward opens one forwarded connection to port over conn, as kubectl
// does per accepted local connection.
func spdyForward(t *testing.T, conn httpstream.Connection, port, requestID int) (data, errs httpstream.Stream) {
	t.Helper()
	h := http.Header{}
	h.Set("streamType", "error")
	h.Set("port", strconv.Itoa(port))
	h.Set("requestID", strconv.Itoa(requestID))
	errs, err := conn.CreateStream(h)
	if err != nil {
		t.Fatal(err)
	}
	errs.Close() // the client never writes to it
	h.Set("streamType", "data")
	data, err = conn.CreateStream(h)
	if err != nil {
		t.Fatal(err)
	}
	return data, errs
}

func TestPortForwardSPDY(t *testing.T) {
	ns := newTestNetNS(t)
	p := hostAndPod(t, ns)
	s := startServer(t, Options{Pods: fakePods{"pod": {ID: "pod-full", NetNS: ns.path}}})
	resp, err := s.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: "pod", Port: []int32{int32(p)}})
	if err != nil {
		t.Fatal(err)
	}
	conn := spdyDial(t, resp.Url, "portforward.k8s.io")
	// Several connections over one session, as a browser would open.
	for i := range 3 {
		data, errs := spdyForward(t, conn, p, i)
		got, err := io.ReadAll(data)
		if err != nil || string(got) != "pod" {
			t.Fatalf("connection %d: got %q, %v", i, got, err)
		}
		if msg, _ := io.ReadAll(errs); len(msg) != 0 {
			t.Fatalf("connection %d: error stream: %s", i, msg)
		}
		conn.RemoveStreams(data, errs)
	}

	// A closed port is reported on the error stream.
	l := ns.listen(t, "tcp4", "127.0.0.1:0", "x")
	closed := port(l)
	l.Close()
	_, errs := spdyForward(t, conn, closed, 10)
	if msg, _ := io.ReadAll(errs); !strings.Contains(string(msg), "refused") {
		t.Fatalf("closed port: error stream says %q", msg)
	}
}

func TestPortForwardWebsocket(t *testing.T) {
	ns := newTestNetNS(t)
	p := hostAndPod(t, ns)
	s := startServer(t, Options{Pods: fakePods{"pod": {ID: "pod", NetNS: ns.path}}})
	resp, err := s.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: "pod", Port: []int32{int32(p)}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := websocket.NewConfig(strings.Replace(resp.Url, "http://", "ws://", 1), "http://127.0.0.1/")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Protocol = []string{"v4.channel.k8s.io"}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	// Channel 0 is data, 1 errors; each first carries the port, then data
	// arrives on 0 until the pod closes.
	var data []byte
	ws.SetDeadline(time.Now().Add(10 * time.Second))
	for {
		var msg []byte
		if err := websocket.Message.Receive(ws, &msg); err != nil {
			break
		}
		if len(msg) == 0 || msg[0] != 0 {
			continue
		}
		data = append(data, msg[1:]...)
		if len(data) >= 2+len("pod") {
			break
		}
	}
	if len(data) < 2 || int(binary.LittleEndian.Uint16(data)) != p || string(data[2:]) != "pod" {
		t.Fatalf("data channel carried %q", data)
	}
}

func TestExecExitCode(t *testing.T) {
	s := startServer(t, Options{Pods: fakePods{}, Containers: fakeContainers{}})
	for _, tc := range []struct {
		cmd    []string
		reason string
	}{{[]string{"exit", "3"}, "NonZeroExitCode"}, {[]string{"true"}, ""}} {
		resp, err := s.GetExec(&runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: tc.cmd, Stdout: true})
		if err != nil {
			t.Fatal(err)
		}
		conn := spdyDial(t, resp.Url, "v4.channel.k8s.io")
		h := http.Header{}
		h.Set("streamType", "error")
		errs, err := conn.CreateStream(h)
		if err != nil {
			t.Fatal(err)
		}
		h.Set("streamType", "stdout")
		stdout, err := conn.CreateStream(h)
		if err != nil {
			t.Fatal(err)
		}
		var out []byte
		var wg sync.WaitGroup
		wg.Go(func() { out, _ = io.ReadAll(stdout) })
		st, _ := io.ReadAll(errs)
		wg.Wait()
		if want := "ctr-full-id:" + strings.Join(tc.cmd, " "); string(out) != want {
			t.Errorf("%v: stdout %q, want %q (the full ID must reach the container manager)", tc.cmd, out, want)
		}
		if tc.reason == "" {
			if len(st) != 0 {
				var v map[string]any
				json.Unmarshal(st, &v)
				if v["status"] != "Success" {
					t.Errorf("%v: status %s", tc.cmd, st)
				}
			}
			continue
		}
		var v struct {
			Reason  string
			Details struct {
				Causes []struct{ Reason, Message string }
			}
		}
		if err := json.Unmarshal(st, &v); err != nil {
			t.Fatalf("%v: status %q: %v", tc.cmd, st, err)
		}
		if v.Reason != tc.reason || len(v.Details.Causes) != 1 || v.Details.Causes[0].Reason != "ExitCode" || v.Details.Causes[0].Message != "3" {
			t.Errorf("%v: status %s does not carry exit code 3", tc.cmd, st)
		}
	}
}

func TestSessionLimit(t *testing.T) {
	ns := newTestNetNS(t)
	p := hostAndPod(t, ns)
	s := startServer(t, Options{Pods: fakePods{"pod": {ID: "pod", NetNS: ns.path}}, MaxStreams: 1})
	first, err := s.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: "pod"})
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: "pod"})
	if err != nil {
		t.Fatal(err)
	}
	refused := metrics.Read("crisp_streaming_sessions_refused_total", "kind", metrics.StreamPortForward)
	open := metrics.Read("crisp_streaming_sessions", "kind", metrics.StreamPortForward)
	conn := spdyDial(t, first.Url, "portforward.k8s.io") // holds the one slot
	if got := metrics.Read("crisp_streaming_sessions", "kind", metrics.StreamPortForward) - open; got != 1 {
		t.Errorf("open port-forward sessions went up by %v, want 1", got)
	}
	resp, err := http.Post(second.Url, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second session: status %d, want 429", resp.StatusCode)
	}
	// The session's own forwarded connections need slots too. The server
	// refuses the pair as soon as both streams exist and may reset the data
	// stream before the client's CreateStream returns, so only the error
	// stream's message counts here.
	h := http.Header{}
	h.Set("streamType", "error")
	h.Set("port", strconv.Itoa(p))
	h.Set("requestID", "0")
	errs, err := conn.CreateStream(h)
	if err != nil {
		t.Fatal(err)
	}
	errs.Close()
	h.Set("streamType", "data")
	conn.CreateStream(h)
	if msg, _ := io.ReadAll(errs); !strings.Contains(string(msg), "too many") {
		t.Fatalf("forward beyond the limit: error stream says %q", msg)
	}
	if got := metrics.Read("crisp_streaming_sessions_refused_total", "kind", metrics.StreamPortForward) - refused; got != 2 {
		t.Errorf("refusals counted: %v, want 2 (the session and the connection)", got)
	}
	conn.Close()
	testutil.WaitFor(t, "the session's end to be counted", 30*time.Second, func() bool {
		return metrics.Read("crisp_streaming_sessions", "kind", metrics.StreamPortForward) == open
	})
}

// TestCloseEndsSessions: upgraded connections are hijacked from the HTTP
// server, so Close must end them itself.
func TestCloseEndsSessions(t *testing.T) {
	ns := newTestNetNS(t)
	// A pod server that never answers nor closes.
	l := ns.listen(t, "tcp4", "127.0.0.1:0", "")
	s, err := New(Options{Pods: fakePods{"pod": {ID: "pod", NetNS: ns.path}}})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	resp, err := s.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: "pod"})
	if err != nil {
		t.Fatal(err)
	}
	conn := spdyDial(t, resp.Url, "portforward.k8s.io")
	data, _ := spdyForward(t, conn, port(l), 0)
	data.Write([]byte("x"))
	time.Sleep(100 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the session")
	}
	select {
	case <-conn.CloseChan():
	case <-time.After(10 * time.Second):
		t.Fatal("client connection still open after Close")
	}
}

// TestSessionsLeaveNothingBehind runs many port-forward sessions while the
// server stays up: goroutines and descriptors must come back to where they
// were, since a busy node runs the server for months.
func TestSessionsLeaveNothingBehind(t *testing.T) {
	ns := newTestNetNS(t)
	p := hostAndPod(t, ns)
	s := startServer(t, Options{Pods: fakePods{"pod": {ID: "pod", NetNS: ns.path}}})
	// Warm up pools (HTTP, SPDY, the runtime's threads) before measuring.
	onePortForward(t, s, p)
	time.Sleep(100 * time.Millisecond)
	goroutines, fds := goruntime.NumGoroutine(), testutil.OpenFDs(t)

	for range 50 {
		onePortForward(t, s, p)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		g, f := goruntime.NumGoroutine(), testutil.OpenFDs(t)
		if g <= goroutines && f <= fds {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines %d (were %d), fds %d (were %d)\n%s", g, goroutines, f, fds, buf[:goruntime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func onePortForward(t *testing.T, s *Server, p int) {
	t.Helper()
	resp, err := s.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: "pod"})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := spdy.NewRoundTripper(nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, resp.Url, nil)
	req.Header.Set(httpstream.HeaderProtocolVersion, "portforward.k8s.io")
	hr, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := rt.NewConnection(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	data, errs := spdyForward(t, conn, p, 0)
	if got, err := io.ReadAll(data); err != nil || string(got) != "pod" {
		t.Fatalf("got %q, %v", got, err)
	}
	io.ReadAll(errs)
	data.Close()
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "crisp-streaming-test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)

	s := startServer(t, Options{Pods: fakePods{"p": {ID: "p"}}, TLSCertFile: certFile, TLSKeyFile: keyFile})
	resp, err := s.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resp.Url, "https://127.0.0.1:") {
		t.Fatalf("URL %s: want https", resp.Url)
	}
	pool := x509.NewCertPool()
	pool.AddCert(must(x509.ParseCertificate(der)))
	c := http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	r, err := c.Get(s.URL() + "exec/AAAAAAAA")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusNotFound {
		t.Fatalf("bad token over TLS: %d", r.StatusCode)
	}
	// Plain HTTP gets no session.
	if r, err := http.Get(strings.Replace(resp.Url, "https://", "http://", 1)); err == nil {
		r.Body.Close()
		if r.StatusCode < 400 {
			t.Fatalf("plain HTTP to the TLS server: %d", r.StatusCode)
		}
	}
	if _, err := New(Options{Pods: fakePods{}, TLSCertFile: certFile}); err == nil {
		t.Fatal("a certificate without its key must be refused")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
