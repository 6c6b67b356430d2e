package streaming

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
	"k8s.io/streaming/pkg/httpstream/wsstream"
	utilexec "k8s.io/utils/exec"

	"github.com/crisp-runtime/crisp/errdefs"
)

// Exec and attach sessions are served here rather than by the library: its
// websocket handler stops at v4.channel.k8s.io, while client-go's websocket
// executor (kubectl since 1.30, critest -websocket-exec) only speaks
// v5.channel.k8s.io, which adds the client's half-close of stdin. SPDY and
// the older websocket protocols still go through the library's handlers.

// streamProtocolV5 is the websocket subprotocol with stream close signals.
const streamProtocolV5 = "v5.channel.k8s.io"

// Tokens are one-time and short-lived, like the library's: kubelet fetches
// the URL right before using it.
const (
	tokenTTL         = time.Minute
	maxPendingTokens = 1000
)

// sessionRequests holds the exec and attach requests handed out as URLs
// and not used yet.
type sessionRequests struct {
	mu      sync.Mutex
	pending map[string]pendingRequest
}

type pendingRequest struct {
	req     any // *runtimeapi.ExecRequest or *runtimeapi.AttachRequest
	expires time.Time
}

func (c *sessionRequests) insert(req any) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for tok, p := range c.pending {
		if now.After(p.expires) {
			delete(c.pending, tok)
		}
	}
	if len(c.pending) >= maxPendingTokens {
		return "", fmt.Errorf("%d streaming URLs handed out and not used yet: %w", len(c.pending), errdefs.ErrResourceExhausted)
	}
	if c.pending == nil {
		c.pending = map[string]pendingRequest{}
	}
	b := make([]byte, 12)
	rand.Read(b) // never fails
	tok := base64.RawURLEncoding.EncodeToString(b)
	c.pending[tok] = pendingRequest{req: req, expires: now.Add(tokenTTL)}
	return tok, nil
}

func (c *sessionRequests) consume(tok string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pending[tok]
	delete(c.pending, tok)
	if !ok || time.Now().After(p.expires) {
		return nil, false
	}
	return p.req, true
}

// checkStreams refuses sessions the protocols cannot serve.
func checkStreams(tty, stdin, stdout, stderr bool) error {
	if !stdin && !stdout && !stderr {
		return errdefs.InvalidArgument("one of stdin, stdout and stderr is required")
	}
	if tty && stderr {
		return errdefs.InvalidArgument("tty and stderr cannot both be set: a terminal has one output")
	}
	return nil
}

func (s *Server) sessionURL(kind, token string) string {
	return s.url.JoinPath(kind, token).String()
}

// remoteCommand routes /exec/<token> and /attach/<token>; ok is false for
// any other path.
func (s *Server) remoteCommand(w http.ResponseWriter, r *http.Request) (ok bool) {
	kind, token, found := strings.Cut(strings.TrimPrefix(r.URL.Path, s.url.Path), "/")
	if !found || (kind != "exec" && kind != "attach") {
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return true
	}
	req, found := s.requests.consume(token)
	if !found {
		http.NotFound(w, r)
		return true
	}
	var opts remotecommand.Options
	var run func(ctx context.Context, stdin io.Reader, stdout, stderr io.WriteCloser, resize <-chan TerminalSize) error
	switch req := req.(type) {
	case *runtimeapi.ExecRequest:
		if kind != "exec" {
			http.NotFound(w, r)
			return true
		}
		opts = remotecommand.Options{Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr, TTY: req.Tty}
		run = func(ctx context.Context, stdin io.Reader, stdout, stderr io.WriteCloser, resize <-chan TerminalSize) error {
			return s.rt.Exec(ctx, req.ContainerId, req.Cmd, stdin, stdout, stderr, req.Tty, resize)
		}
	case *runtimeapi.AttachRequest:
		if kind != "attach" {
			http.NotFound(w, r)
			return true
		}
		opts = remotecommand.Options{Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr, TTY: req.Tty}
		run = func(ctx context.Context, stdin io.Reader, stdout, stderr io.WriteCloser, resize <-chan TerminalSize) error {
			return s.rt.Attach(ctx, req.ContainerId, stdin, stdout, stderr, req.Tty, resize)
		}
	}
	if wsstream.IsWebSocketRequestWithStreamCloseProtocol(r) {
		s.serveWebsocketV5(w, r, &opts, run)
		return true
	}
	e := libSession(run)
	if kind == "exec" {
		remotecommand.ServeExec(w, r, e, "", "", "", nil, &opts, s.idle, s.creation, remotecommand.SupportedStreamingProtocols)
	} else {
		remotecommand.ServeAttach(w, r, e, "", "", "", &opts, s.idle, s.creation, remotecommand.SupportedStreamingProtocols)
	}
	return true
}

// libSession lets the library's handlers run an exec or attach session.
type libSession func(ctx context.Context, stdin io.Reader, stdout, stderr io.WriteCloser, resize <-chan TerminalSize) error

func (f libSession) ExecInContainer(ctx context.Context, _, _, _ string, _ []string, in io.Reader, out, errw io.WriteCloser, _ bool, resize <-chan TerminalSize, _ time.Duration) error {
	return f(ctx, in, out, errw, resize)
}

func (f libSession) AttachContainer(ctx context.Context, _, _, _ string, in io.Reader, out, errw io.WriteCloser, _ bool, resize <-chan TerminalSize) error {
	return f(ctx, in, out, errw, resize)
}

// Channels of the websocket remote command protocol.
const (
	wsStdin = iota
	wsStdout
	wsStderr
	wsError
	wsResize
)

func (s *Server) serveWebsocketV5(w http.ResponseWriter, r *http.Request, opts *remotecommand.Options, run libSession) {
	channels := []wsstream.ChannelType{
		wsStdin:  wsChannel(opts.Stdin, wsstream.ReadChannel),
		wsStdout: wsChannel(opts.Stdout, wsstream.WriteChannel),
		wsStderr: wsChannel(opts.Stderr, wsstream.WriteChannel),
		wsError:  wsstream.WriteChannel,
		wsResize: wsstream.ReadChannel,
	}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		streamProtocolV5: {Binary: true, Channels: channels},
	})
	conn.SetIdleTimeout(s.idle)
	_, streams, err := conn.Open(w, r)
	if err != nil {
		klog.V(2).InfoS("Streaming: websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	defer conn.Close()
	// An empty message on the first output channel tells the client that
	// the session is set up.
	switch {
	case opts.Stdout:
		streams[wsStdout].Write(nil)
	case opts.Stderr:
		streams[wsStderr].Write(nil)
	default:
		streams[wsError].Write(nil)
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var resize chan TerminalSize
	if opts.TTY {
		resize = make(chan TerminalSize)
		go decodeResizes(ctx, streams[wsResize], resize)
	}
	var stdin io.Reader
	var stdout, stderr io.WriteCloser
	if opts.Stdin {
		stdin = streams[wsStdin]
	}
	if opts.Stdout {
		stdout = streams[wsStdout]
	}
	if opts.Stderr {
		stderr = streams[wsStderr]
	}
	st := sessionStatus(run(ctx, stdin, stdout, stderr, resize))
	b, _ := json.Marshal(st)
	streams[wsError].Write(b)
}

func wsChannel(wanted bool, t wsstream.ChannelType) wsstream.ChannelType {
	if wanted {
		return t
	}
	return wsstream.IgnoreChannel
}

// decodeResizes reads the JSON terminal sizes the client sends.
func decodeResizes(ctx context.Context, r io.Reader, out chan<- TerminalSize) {
	defer close(out)
	dec := json.NewDecoder(r)
	for {
		var sz TerminalSize
		if err := dec.Decode(&sz); err != nil {
			return
		}
		select {
		case out <- sz:
		case <-ctx.Done():
			return
		}
	}
}

// remoteStatus is the metav1.Status the v4 and v5 protocols put on the error
// channel; clients take the exit code from its causes.
type remoteStatus struct {
	Metadata struct{}      `json:"metadata"`
	Status   string        `json:"status"`
	Message  string        `json:"message,omitempty"`
	Reason   string        `json:"reason,omitempty"`
	Details  *statusDetail `json:"details,omitempty"`
	Code     int32         `json:"code,omitempty"`
}

type statusDetail struct {
	Causes []statusCause `json:"causes,omitempty"`
}

type statusCause struct {
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

func sessionStatus(err error) remoteStatus {
	var st remoteStatus
	var exit utilexec.CodeExitError
	switch {
	case err == nil:
		st.Status = "Success"
	case errors.As(err, &exit):
		st.Status, st.Reason = "Failure", remotecommand.NonZeroExitCodeReason
		st.Message = fmt.Sprintf("command terminated with non-zero exit code: %v", exit)
		st.Details = &statusDetail{Causes: []statusCause{{Reason: remotecommand.ExitCodeCauseType, Message: strconv.Itoa(exit.Code)}}}
	default:
		st.Status, st.Reason, st.Code = "Failure", "InternalError", http.StatusInternalServerError
		st.Message = fmt.Sprintf("Internal error occurred: %v", err)
	}
	return st
}
