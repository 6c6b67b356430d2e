// Package streaming serves kubelet's exec, attach and port-forward sessions.
// The CRI only hands out URLs; the sessions themselves (SPDY or websocket,
// both spoken by k8s.io/cri-streaming) run over this package's own HTTP
// server. Exec and attach are delegated to the container manager; port
// forwarding is done here, by dialing the pod's port from inside its network
// namespace.
package streaming

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	cristreaming "k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/metrics"
	"github.com/crisp-runtime/crisp/internal/timeouts"
)

// TerminalSize is a resize event of an exec or attach session with a TTY.
type TerminalSize = remotecommand.TerminalSize

// Containers is what exec and attach need from the container manager.
// Stream arguments are nil when the client did not ask for them.
type Containers interface {
	// Running resolves a container ID (or unique prefix) to the full ID of a
	// container that can be exec'd into or attached to. It returns an error
	// wrapping errdefs.ErrNotFound for an unknown container and one wrapping
	// errdefs.ErrFailedPrecondition for a container that is not running.
	Running(containerID string) (string, error)
	// Exec runs cmd in the container and returns its exit code once the
	// process has exited and its output is copied. err is for failures to
	// run it at all, not for a non-zero exit.
	Exec(ctx context.Context, containerID string, cmd []string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan TerminalSize) (exitCode int, err error)
	// Attach connects the streams to the container's main process until
	// ctx ends, the client closes stdin or the container exits.
	Attach(ctx context.Context, containerID string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan TerminalSize) error
}

// PodNetwork is where a pod's ports can be reached.
type PodNetwork struct {
	// ID is the pod's full ID.
	ID string
	// NetNS is the path of the pod's network namespace file; "" means the
	// pod uses the host's network.
	NetNS string
	// IPs are the pod's addresses, tried after loopback because some
	// servers bind only to the pod IP.
	IPs []string
}

// Pods is what port forwarding needs from the sandbox manager.
type Pods interface {
	// Network returns the network of a ready pod, an error wrapping
	// errdefs.ErrNotFound for an unknown one and one wrapping
	// errdefs.ErrFailedPrecondition for a pod that is not ready.
	Network(podID string) (PodNetwork, error)
}

// Defaults for Options fields left zero.
const (
	// DefaultIdleTimeout is kubelet's and containerd's: a session with no
	// traffic for this long is closed.
	DefaultIdleTimeout = 4 * time.Hour
	// DefaultCreationTimeout bounds how long a SPDY client may take to open
	// the streams it announced.
	DefaultCreationTimeout = remotecommand.DefaultStreamCreationTimeout
	// DefaultMaxStreams bounds sessions plus forwarded connections.
	DefaultMaxStreams = 128
)

// Options configure a Server.
type Options struct {
	// Address is the IP to listen on; "" means 127.0.0.1, never all
	// interfaces, so that nothing is exposed unless asked for.
	Address string
	// Port is the TCP port; 0 picks a free one.
	Port int
	// TLSCertFile and TLSKeyFile make the server speak HTTPS; both or
	// neither.
	TLSCertFile, TLSKeyFile string
	// IdleTimeout closes sessions without traffic; CreationTimeout bounds
	// the set-up of a SPDY session's streams.
	IdleTimeout, CreationTimeout time.Duration
	// MaxStreams bounds the sessions (exec, attach, port-forward) and
	// forwarded port-forward connections served at once. Beyond it a new
	// session gets 429 and a new forwarded connection an error.
	MaxStreams int

	Pods Pods
	// Containers may be nil until the container manager exists: exec and
	// attach then answer Unimplemented.
	Containers Containers
}

// Server is the streaming server: URLs for the CRI, sessions over HTTP.
type Server struct {
	lib        cristreaming.Server
	lis        net.Listener
	http       *http.Server
	url        *url.URL
	pods       Pods
	containers Containers
	rt         *runtime
	requests   sessionRequests
	idle       time.Duration
	creation   time.Duration
	slots      chan struct{}

	// base is cancelled by Close to end every session, which the HTTP
	// server cannot do itself: upgraded connections are hijacked from it.
	base   context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	sessions map[net.Conn]struct{}
	closed   bool
	wg       sync.WaitGroup
}

type connKey struct{}

// New listens on the configured address right away, so that the URLs handed
// out carry the real port even when a random one was asked for. Serve
// starts answering.
func New(o Options) (*Server, error) {
	if o.Pods == nil {
		return nil, errors.New("streaming: Options.Pods is required")
	}
	if o.Address == "" {
		o.Address = "127.0.0.1"
	}
	ip := net.ParseIP(o.Address)
	if ip == nil {
		return nil, fmt.Errorf("streaming: address %q is not an IP address", o.Address)
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.CreationTimeout <= 0 {
		o.CreationTimeout = DefaultCreationTimeout
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = DefaultMaxStreams
	}
	var tlsConfig *tls.Config
	if o.TLSCertFile != "" || o.TLSKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("streaming: TLS key pair: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	lis, err := net.Listen("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(o.Port)))
	if err != nil {
		return nil, fmt.Errorf("streaming: listen: %w", err)
	}
	lis = goneListener{lis}
	u := &url.URL{Scheme: "http", Host: lis.Addr().String(), Path: "/"}
	if tlsConfig != nil {
		u.Scheme = "https"
		lis = tls.NewListener(lis, tlsConfig)
	}

	s := &Server{
		lis:        lis,
		url:        u,
		pods:       o.Pods,
		containers: o.Containers,
		idle:       o.IdleTimeout,
		creation:   o.CreationTimeout,
		slots:      make(chan struct{}, o.MaxStreams),
		sessions:   map[net.Conn]struct{}{},
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.rt = &runtime{s: s}

	cfg := cristreaming.DefaultConfig
	cfg.Addr = lis.Addr().String()
	cfg.BaseURL = u
	cfg.StreamIdleTimeout = o.IdleTimeout
	cfg.StreamCreationTimeout = o.CreationTimeout
	// The library's own listener and TLS are unused: it only routes.
	s.lib, err = cristreaming.NewServer(cfg, s.rt)
	if err != nil {
		lis.Close()
		return nil, fmt.Errorf("streaming: %w", err)
	}
	s.http = &http.Server{
		Handler: s,
		// Upgrade requests are small; a client that trickles its headers
		// must not hold a slot for long.
		ReadHeaderTimeout: timeouts.StreamHeaders,
		ConnContext:       connContext,
	}
	return s, nil
}

// URL is the base of the URLs handed out, e.g. http://127.0.0.1:41234/.
func (s *Server) URL() string { return s.url.String() }

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// Serve answers sessions until Close; it returns nil after Close.
func (s *Server) Serve() error {
	klog.InfoS("Streaming server listening", "url", s.url)
	if err := s.http.Serve(s.lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close stops listening and ends every session, including upgraded ones.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.sessions {
		c.Close()
	}
	s.mu.Unlock()
	s.cancel()
	err := s.http.Close()
	// Handlers return once their connections are gone; waiting keeps
	// sessions from outliving the server. The wait is bounded because an
	// exec's end depends on the container manager honouring its context,
	// and a daemon that cannot stop is worse than a session cut short.
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(timeouts.StreamClose):
		klog.InfoS("Streaming sessions still running after close; not waiting for them", "waited", timeouts.StreamClose)
	}
	return err
}

// ServeHTTP bounds concurrent sessions and tracks their connections, then
// lets the library route by token; an unknown or used token gets 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := s.sessionKind(r)
	if !s.acquire() {
		if kind != "" {
			metrics.StreamingRefused(kind)
		}
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many streaming sessions", http.StatusTooManyRequests)
		return
	}
	defer s.release()
	c, _ := r.Context().Value(connKey{}).(net.Conn)
	if !s.track(c) {
		http.Error(w, "streaming server is shutting down", http.StatusServiceUnavailable)
		return
	}
	defer s.untrack(c)
	if kind != "" {
		defer metrics.StreamingSession(kind)()
	}
	if klog.V(5).Enabled() {
		// A cheap leak check: after sessions end the count comes back.
		defer func() {
			klog.InfoS("Streaming session ended", "method", r.Method, "path", r.URL.Path, "goroutines", goruntime.NumGoroutine())
		}()
	}
	// The response writer goes through unwrapped: the library must be able
	// to hijack it for the SPDY and websocket upgrades.
	if s.remoteCommand(w, r) {
		return
	}
	if wsstream.IsWebSocketRequestWithTunnelingProtocol(r) && s.tunnelPortForward(w, r) {
		return
	}
	s.lib.ServeHTTP(w, r)
}

// sessionKind is the kind of session a URL this server handed out names
// (the path's first element), "" for any other path.
func (s *Server) sessionKind(r *http.Request) string {
	kind, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, s.url.Path), "/")
	switch kind {
	case metrics.StreamExec, metrics.StreamAttach, metrics.StreamPortForward:
		return kind
	}
	return ""
}

func (s *Server) acquire() bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s *Server) release() { <-s.slots }

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	if c != nil {
		s.sessions[c] = struct{}{}
	}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	if c != nil {
		delete(s.sessions, c)
	}
	s.mu.Unlock()
	s.wg.Done()
}

// GetExec checks that the container can be exec'd into and returns a
// one-time URL for the session.
func (s *Server) GetExec(req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if s.containers == nil {
		return nil, fmt.Errorf("Exec: %w", errdefs.ErrUnimplemented)
	}
	if err := checkStreams(req.GetTty(), req.GetStdin(), req.GetStdout(), req.GetStderr()); err != nil {
		return nil, err
	}
	id, err := s.containers.Running(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	// The cached request is what the session runs: give it the full ID so
	// a prefix cannot come to name another container in the meantime.
	r := &runtimeapi.ExecRequest{ContainerId: id, Cmd: req.GetCmd(), Tty: req.GetTty(), Stdin: req.GetStdin(), Stdout: req.GetStdout(), Stderr: req.GetStderr()}
	tok, err := s.requests.insert(r)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ExecResponse{Url: s.sessionURL("exec", tok)}, nil
}

// GetAttach checks that the container can be attached to and returns a
// one-time URL for the session.
func (s *Server) GetAttach(req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if s.containers == nil {
		return nil, fmt.Errorf("Attach: %w", errdefs.ErrUnimplemented)
	}
	if err := checkStreams(req.GetTty(), req.GetStdin(), req.GetStdout(), req.GetStderr()); err != nil {
		return nil, err
	}
	id, err := s.containers.Running(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	r := &runtimeapi.AttachRequest{ContainerId: id, Tty: req.GetTty(), Stdin: req.GetStdin(), Stdout: req.GetStdout(), Stderr: req.GetStderr()}
	tok, err := s.requests.insert(r)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.AttachResponse{Url: s.sessionURL("attach", tok)}, nil
}

// GetPortForward checks that the pod is ready and returns a one-time URL
// for the session.
func (s *Server) GetPortForward(req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	pn, err := s.pods.Network(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	r := &runtimeapi.PortForwardRequest{PodSandboxId: pn.ID, Port: req.GetPort()}
	return s.lib.GetPortForward(r)
}
