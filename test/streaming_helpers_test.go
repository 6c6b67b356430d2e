//go:build integration

package test

import (
	"context"
	"errors"
	"io"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/testutil"
	"github.com/crisp-runtime/crisp/test/harness"
)

// transports are the two ways client-go (kubectl, crictl, critest) speaks
// to a streaming server.
var transports = []string{"spdy", "websocket"}

// executor connects to a session URL as kubectl does over transport.
func executor(t *testing.T, transport, sessionURL string) remotecommand.Executor {
	t.Helper()
	u, err := url.Parse(sessionURL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != "127.0.0.1" {
		t.Fatalf("session URL %s: want loopback by default", sessionURL)
	}
	cfg := &rest.Config{TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	var e remotecommand.Executor
	switch transport {
	case "spdy":
		e, err = remotecommand.NewSPDYExecutor(cfg, "POST", u)
	case "websocket":
		e, err = remotecommand.NewWebSocketExecutor(cfg, "GET", sessionURL)
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// execURL asks crisp for an exec session.
func execURL(t *testing.T, d *harness.Daemon, req *runtimeapi.ExecRequest) string {
	t.Helper()
	resp, err := d.Runtime.Exec(harness.Ctx(t), req)
	if err != nil {
		t.Fatalf("Exec %v: %v", req.Cmd, err)
	}
	return resp.Url
}

func attachURL(t *testing.T, d *harness.Daemon, req *runtimeapi.AttachRequest) string {
	t.Helper()
	resp, err := d.Runtime.Attach(harness.Ctx(t), req)
	if err != nil {
		t.Fatalf("Attach %s: %v", req.ContainerId, err)
	}
	return resp.Url
}

// execResult is what a streaming exec produced.
type execResult struct {
	stdout, stderr string
	code           int // the remote exit code; -1 when the session failed
	err            error
}

// streamExec runs cmd in container id over transport with stdin (may be
// nil) and collects the output.
func streamExec(ctx context.Context, t *testing.T, d *harness.Daemon, transport, id string, stdin io.Reader, tty bool, sizes remotecommand.TerminalSizeQueue, cmd ...string) execResult {
	t.Helper()
	req := &runtimeapi.ExecRequest{ContainerId: id, Cmd: cmd, Stdin: stdin != nil, Stdout: true, Stderr: !tty, Tty: tty}
	e := executor(t, transport, execURL(t, d, req))
	var stdout, stderr testutil.SyncBuffer
	opts := remotecommand.StreamOptions{Stdin: stdin, Stdout: &stdout, Tty: tty, TerminalSizeQueue: sizes}
	if !tty {
		opts.Stderr = &stderr
	}
	err := e.StreamWithContext(ctx, opts)
	return execResult{stdout: stdout.String(), stderr: stderr.String(), code: exitCode(err), err: err}
}

// exitCode is the remote command's exit code as kubectl reports it.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee utilexec.CodeExitError
	if errors.As(err, &ee) {
		return ee.ExitStatus()
	}
	return -1
}

// waitOutput waits until b contains want.
func waitOutput(t *testing.T, b *testutil.SyncBuffer, want string, timeout time.Duration) {
	t.Helper()
	timeout = testutil.Scaled(timeout)
	deadline := time.Now().Add(timeout)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %q; output so far %q", timeout, want, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sizeQueue hands client-go terminal sizes sent on a channel.
type sizeQueue chan remotecommand.TerminalSize

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	s, ok := <-q
	if !ok {
		return nil
	}
	return &s
}

// ctrProcs lists the container's processes as "pid args" lines, seen from
// inside with ExecSync (the ps itself included).
func ctrProcs(t *testing.T, d *harness.Daemon, id string) string {
	t.Helper()
	return string(execSync(t, d, id, 10, "ps", "-o", "pid,args").Stdout)
}

// crictlCmd is crictl talking to d.
func crictlCmd(t *testing.T, d *harness.Daemon, args ...string) *exec.Cmd {
	t.Helper()
	return exec.Command(filepath.Join(repoRoot(t), "_output/bin/crictl"), append([]string{"--runtime-endpoint", "unix://" + d.Socket, "--timeout", "30s"}, args...)...)
}

// inPty runs cmd under script(1), which gives it a pseudo-terminal as
// kubectl exec -it has on a console; input is typed into the terminal.
// script -e returns the command's exit status.
func inPty(t *testing.T, cmd *exec.Cmd, input io.Reader) (string, int) {
	t.Helper()
	line := strings.Join(quoteAll(cmd.Args), " ")
	sc := exec.Command("script", "-qefc", line, "/dev/null")
	sc.Env = append(cmd.Environ(), "TERM=xterm")
	sc.Stdin = input
	var out testutil.SyncBuffer
	sc.Stdout, sc.Stderr = &out, &out
	err := sc.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("script %s: %v", line, err)
	}
	return out.String(), code
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return out
}

// slowReader types lines one by one with a pause before each, as a
// person at a terminal would, then ends (EOF) after a last pause.
type slowReader struct {
	lines []string
	pause time.Duration
}

func (r *slowReader) Read(p []byte) (int, error) {
	time.Sleep(r.pause)
	if len(r.lines) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.lines[0])
	r.lines[0] = r.lines[0][n:]
	if r.lines[0] == "" {
		r.lines = r.lines[1:]
	}
	return n, nil
}
