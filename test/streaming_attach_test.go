//go:build integration

package test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/remotecommand"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/testutil"
	"github.com/crisp-runtime/crisp/test/harness"
)

// attachSession is one attached client with its own stdin.
type attachSession struct {
	stdin          *os.File // write end
	stdout, stderr testutil.SyncBuffer
	cancel         context.CancelFunc
	done           chan error
	once           sync.Once
}

// attach connects to the container over transport until detach.
func attach(t *testing.T, d *harness.Daemon, transport, id string, tty bool, sizes remotecommand.TerminalSizeQueue) *attachSession {
	t.Helper()
	e := executor(t, transport, attachURL(t, d, &runtimeapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: !tty, Tty: tty}))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &attachSession{stdin: w, cancel: cancel, done: make(chan error, 1)}
	opts := remotecommand.StreamOptions{Stdin: r, Stdout: &s.stdout, Tty: tty, TerminalSizeQueue: sizes}
	if !tty {
		opts.Stderr = &s.stderr
	}
	go func() {
		defer r.Close()
		s.done <- e.StreamWithContext(ctx, opts)
	}()
	t.Cleanup(s.detach)
	return s
}

func (s *attachSession) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(s.stdin, line); err != nil {
		t.Fatal(err)
	}
}

// detach is the client going away.
func (s *attachSession) detach() {
	s.once.Do(func() {
		s.cancel()
		s.stdin.Close()
		select {
		case <-s.done:
		case <-time.After(testutil.Scaled(10 * time.Second)):
		}
	})
}

// TestAttach: several clients attached at once over both transports share
// the container's stdio; clients leaving do not close the container's
// stdin; attaching works after the daemon restarted, because the monitor,
// not the daemon, holds the stdio.
func TestAttach(t *testing.T) {
	d, pod, podCfg := busyboxPod(t, "attach")
	cfg := ctrConfig("echo", `while read l; do echo "out:$l"; echo "err:$l" >&2; done; echo "stdin closed"`)
	cfg.Stdin = true
	id := runCtr(t, d, pod, podCfg, cfg)

	fds := countEntries(t, d.PID(), "fd")
	a := attach(t, d, "spdy", id, false, nil)
	b := attach(t, d, "websocket", id, false, nil)
	// Both must be attached before the first line: output is live only.
	waitAttached(t, d, id, a, b)
	a.send(t, "one\n")
	b.send(t, "two\n")
	for name, s := range map[string]*attachSession{"spdy": a, "websocket": b} {
		for _, line := range []string{"one", "two"} {
			waitOutput(t, &s.stdout, "out:"+line+"\n", 10*time.Second)
			waitOutput(t, &s.stderr, "err:"+line+"\n", 10*time.Second)
		}
		if strings.Contains(s.stdout.String(), "err:") || strings.Contains(s.stderr.String(), "out:") {
			t.Errorf("%s: streams mixed up: stdout %q stderr %q", name, s.stdout.String(), s.stderr.String())
		}
	}

	a.detach()
	b.send(t, "three\n")
	waitOutput(t, &b.stdout, "out:three\n", 10*time.Second)
	b.detach()
	if st := ctrStatus(t, d, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container %s after its clients left", st.State)
	}
	// A silent container must not keep the sessions of clients that left
	// (their connections to the client and to the monitor).
	testutil.WaitFor(t, "the daemon to close the attach sessions' descriptors", 10*time.Second, func() bool {
		return countEntries(t, d.PID(), "fd") <= fds
	})

	for _, restart := range []func(testing.TB){d.Restart, d.Kill9AndRestart} {
		restart(t)
		c := attach(t, d, "spdy", id, false, nil)
		waitAttached(t, d, id, c)
		c.send(t, "after restart\n")
		waitOutput(t, &c.stdout, "out:after restart\n", 10*time.Second)
		c.detach()
	}

	// crictl attach with piped input; it stays attached after its input
	// ends, as the container's stdin stays open.
	cmd := crictlCmd(t, d, "attach", "-i", id)
	cmd.Stdin = strings.NewReader("from crictl\n")
	var out testutil.SyncBuffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, &out, "out:from crictl\n", 10*time.Second)
	cmd.Process.Kill()
	cmd.Wait()
	if st := ctrStatus(t, d, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container %s after crictl left", st.State)
	}
}

// waitAttached pings the container until every session sees the echo: an
// attach session is live once its first output arrives.
func waitAttached(t *testing.T, d *harness.Daemon, id string, sessions ...*attachSession) {
	t.Helper()
	deadline := time.Now().Add(testutil.Scaled(20 * time.Second))
	for i := 0; ; i++ {
		ping := fmt.Sprintf("ping%d", i)
		sessions[0].send(t, ping+"\n")
		time.Sleep(100 * time.Millisecond)
		all := true
		for _, s := range sessions {
			all = all && strings.Contains(s.stdout.String(), "out:"+ping)
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("attach sessions to %s never saw the container's output", id)
		}
	}
}

// TestAttachTTY: attaching to a container with a terminal, through
// client-go with resizes over both transports and through crictl -it.
func TestAttachTTY(t *testing.T) {
	d, pod, podCfg := busyboxPod(t, "attach-tty")
	cfg := ctrConfig("shell", "exec sh")
	cfg.Command = []string{"sh"}
	cfg.Stdin, cfg.Tty = true, true
	id := runCtr(t, d, pod, podCfg, cfg)

	for i, tr := range transports {
		w, h := 70+i, 30+i
		sizes := make(sizeQueue, 1)
		sizes <- remotecommand.TerminalSize{Width: uint16(w), Height: uint16(h)}
		s := attach(t, d, tr, id, true, sizes)
		want := fmt.Sprintf("size-%dx%d", h, w)
		// The shell polls until the client's size arrived.
		deadline := time.Now().Add(testutil.Scaled(20 * time.Second))
		for !strings.Contains(s.stdout.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no %q in %q", tr, want, s.stdout.String())
			}
			s.send(t, `echo "size-$(stty size | tr ' ' x)"`+"\n")
			time.Sleep(200 * time.Millisecond)
		}
		if !strings.Contains(s.stdout.String(), "\r\n") {
			t.Errorf("%s: no terminal line ends in %q", tr, s.stdout.String())
		}
		close(sizes)
		s.detach()
	}

	out, _ := inPty(t, crictlCmd(t, d, "attach", "-it", id), &slowReader{
		lines: []string{"echo from-crictl-$((2+3))\n", "exit\n"}, pause: 500 * time.Millisecond,
	})
	if !strings.Contains(out, "from-crictl-5") {
		t.Errorf("crictl attach -it: %q", out)
	}
	if st := waitExited(t, d, id, 20*time.Second); st.ExitCode != 0 {
		t.Errorf("shell exited %d", st.ExitCode)
	}
}
