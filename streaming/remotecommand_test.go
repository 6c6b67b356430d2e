package streaming

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// catContainers' exec copies stdin to stdout and exits 5 once stdin ends;
// "block" waits for its context and reports the end on gone.
type catContainers struct {
	fakeContainers
	started, gone chan struct{}
}

func (c catContainers) Exec(ctx context.Context, _ string, cmd []string, stdin io.Reader, stdout, _ io.WriteCloser, _ bool, _ <-chan TerminalSize) (int, error) {
	if cmd[0] == "block" {
		close(c.started)
		<-ctx.Done()
		close(c.gone)
		return -1, ctx.Err()
	}
	io.Copy(stdout, stdin)
	return 5, nil
}

func wsDial(t *testing.T, url, protocol string) *websocket.Conn {
	t.Helper()
	cfg, err := websocket.NewConfig(strings.Replace(url, "http://", "ws://", 1), "http://127.0.0.1/")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Protocol = []string{protocol}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	ws.SetDeadline(time.Now().Add(10 * time.Second))
	return ws
}

// TestExecWebsocketV5 speaks v5.channel.k8s.io as client-go does: the
// stdin close signal ends the command's input, and the status carries the
// exit code.
func TestExecWebsocketV5(t *testing.T) {
	s := startServer(t, Options{Pods: fakePods{}, Containers: catContainers{}})
	resp, err := s.GetExec(&runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"cat"}, Stdin: true, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	ws := wsDial(t, resp.Url, "v5.channel.k8s.io")
	websocket.Message.Send(ws, append([]byte{0}, "hello"...))
	websocket.Message.Send(ws, []byte{255, 0}) // close stdin
	var out, status []byte
	for {
		var msg []byte
		if err := websocket.Message.Receive(ws, &msg); err != nil {
			break
		}
		switch {
		case len(msg) > 0 && msg[0] == 1:
			out = append(out, msg[1:]...)
		case len(msg) > 0 && msg[0] == 3:
			status = append(status, msg[1:]...)
		}
	}
	if string(out) != "hello" {
		t.Errorf("stdout %q", out)
	}
	var st struct {
		Status, Reason string
		Details        struct {
			Causes []struct{ Reason, Message string }
		}
	}
	if err := json.Unmarshal(status, &st); err != nil || st.Reason != "NonZeroExitCode" || len(st.Details.Causes) != 1 || st.Details.Causes[0].Message != "5" {
		t.Errorf("status %s (%v)", status, err)
	}
	// The token was spent.
	r, err := http.Get(resp.Url)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusNotFound {
		t.Errorf("reused exec token: %d", r.StatusCode)
	}
}

// TestExecEndsWhenClientLeaves: a command that never ends by itself is
// stopped when its client's connection goes, over SPDY and websocket.
func TestExecEndsWhenClientLeaves(t *testing.T) {
	for _, proto := range []string{"spdy", "v5.channel.k8s.io", "v4.channel.k8s.io"} {
		c := catContainers{started: make(chan struct{}), gone: make(chan struct{})}
		s := startServer(t, Options{Pods: fakePods{}, Containers: c})
		resp, err := s.GetExec(&runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"block"}, Stdout: true})
		if err != nil {
			t.Fatal(err)
		}
		var closeClient func()
		if proto == "spdy" {
			conn := spdyDial(t, resp.Url, "v4.channel.k8s.io")
			h := http.Header{}
			h.Set("streamType", "error")
			if _, err := conn.CreateStream(h); err != nil {
				t.Fatal(err)
			}
			h.Set("streamType", "stdout")
			if _, err := conn.CreateStream(h); err != nil {
				t.Fatal(err)
			}
			closeClient = func() { conn.Close() }
		} else {
			ws := wsDial(t, resp.Url, proto)
			closeClient = func() { ws.Close() }
		}
		select {
		case <-c.started:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: exec never started", proto)
		}
		closeClient()
		select {
		case <-c.gone:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: exec still running 10s after its client left", proto)
		}
	}
}
