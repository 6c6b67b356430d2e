//go:build integration

package test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"

	"github.com/crisp-runtime/crisp/internal/testutil"
	"github.com/crisp-runtime/crisp/test/harness"
)

// httpHelperEnv turns the test binary into an HTTP server run inside a pod's
// network namespace with nsenter; it answers with the hostname it sees.
const httpHelperEnv = "CRISP_TEST_HTTPHELPER"

func init() {
	addr := os.Getenv(httpHelperEnv)
	if addr == "" {
		return
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("listening")
	host, _ := os.Hostname()
	err = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "http from %s %s", host, r.URL.Path)
	}))
	fmt.Println("error:", err)
	os.Exit(1)
}

// httpInPod serves HTTP on addr inside the pod's network and UTS namespaces
// until the test ends.
func httpInPod(t *testing.T, info podInfo, addr string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net="+info.Namespaces["net"], "--uts="+info.Namespaces["uts"], "--", exe)
	cmd.Env = append(os.Environ(), httpHelperEnv+"="+addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "listening" {
		t.Fatalf("HTTP server in pod: %q", line)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
}

// hostDecoy listens on the host's loopback at port and answers "host": a
// forward that dials in the wrong namespace gets this answer.
func hostDecoy(t *testing.T, port int) {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("host decoy on %d: %v", port, err)
	}
	t.Cleanup(func() { l.Close() })
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "host") }))
}

// freePort is a loopback port free on the host right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// portForwardURL asks crisp for a port-forward session and checks it is
// served on loopback only, the default.
func portForwardURL(t *testing.T, d *harness.Daemon, podID string, port int) string {
	t.Helper()
	resp, err := d.Runtime.PortForward(harness.Ctx(t), &runtimeapi.PortForwardRequest{PodSandboxId: podID, Port: []int32{int32(port)}})
	if err != nil {
		t.Fatalf("PortForward: %v", err)
	}
	u, err := url.Parse(resp.Url)
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != "127.0.0.1" || u.Scheme != "http" {
		t.Fatalf("streaming URL %s: want http on 127.0.0.1 by default", resp.Url)
	}
	return resp.Url
}

// spdyGet does what kubectl port-forward does for one local connection:
// SPDY session, an error and a data stream for port, then an HTTP GET over
// the data stream. Without "Connection: close" the pod's server keeps the
// connection until the client half-closes the stream.
func spdyGet(t *testing.T, sessionURL string, port int, path string, keepAlive ...bool) (string, error) {
	t.Helper()
	rt, err := spdy.NewRoundTripper(nil)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequest(http.MethodPost, sessionURL, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set(httpstream.HeaderProtocolVersion, "portforward.k8s.io")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return "", err
	}
	conn, err := rt.NewConnection(resp)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	h := http.Header{}
	h.Set("streamType", "error")
	h.Set("port", strconv.Itoa(port))
	h.Set("requestID", "0")
	errs, err := conn.CreateStream(h)
	if err != nil {
		return "", err
	}
	errs.Close()
	h.Set("streamType", "data")
	data, err := conn.CreateStream(h)
	if err != nil {
		return "", err
	}
	defer data.Close()
	connHeader := "Connection: close\r\n"
	if len(keepAlive) > 0 && keepAlive[0] {
		connHeader = ""
	}
	fmt.Fprintf(data, "GET %s HTTP/1.1\r\nHost: pod\r\n%s\r\n", path, connHeader)
	hr, err := http.ReadResponse(bufio.NewReader(data), nil)
	if err != nil {
		msg, _ := io.ReadAll(errs)
		return "", fmt.Errorf("reading the response: %v (error stream: %q)", err, msg)
	}
	defer hr.Body.Close()
	body, err := io.ReadAll(hr.Body)
	return string(body), err
}

func TestPortForwardReachesPodNotHost(t *testing.T) {
	pn := harness.PodNetwork(t)
	d := harness.Start(t, harness.WithCNI(pn.ConfDir))
	cfg := podConfig("pf")
	cfg.Hostname = "pod-pf"
	id := runPod(t, d, cfg)
	_, info := podStatus(t, d, id)
	port := freePort(t)
	hostDecoy(t, port)
	httpInPod(t, info, "127.0.0.1:"+strconv.Itoa(port))

	got, err := spdyGet(t, portForwardURL(t, d, id, port), port, "/spdy")
	if err != nil {
		t.Fatal(err)
	}
	if got != "http from pod-pf /spdy" {
		t.Fatalf("forwarded GET answered %q", got)
	}

	// The same through crictl, i.e. client-go's port forwarder as kubectl
	// uses it.
	local := freePort(t)
	crictl := exec.Command(filepath.Join(repoRoot(t), "_output/bin/crictl"), "--runtime-endpoint", "unix://"+d.Socket,
		"port-forward", id, fmt.Sprintf("%d:%d", local, port))
	var out strings.Builder
	crictl.Stdout, crictl.Stderr = &out, &out
	if err := crictl.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = crictl.Process.Kill(); _ = crictl.Wait() }()
	c := http.Client{Timeout: testutil.Scaled(5 * time.Second)}
	var body string
	testutil.WaitFor(t, "crictl port-forward to serve", 15*time.Second, func() bool {
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/crictl", local))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return true
	})
	if body != "http from pod-pf /crictl" {
		t.Fatalf("crictl port-forward answered %q\n%s", body, out.String())
	}
	// Several connections through one crictl session.
	for i := range 5 {
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/again%d", local, i))
		if err != nil {
			t.Fatalf("connection %d through crictl: %v\n%s", i, err, out.String())
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("http from pod-pf /again%d", i); string(b) != want {
			t.Fatalf("connection %d: %q, want %q", i, b, want)
		}
	}
}

func TestPortForwardHostNetworkPod(t *testing.T) {
	d := harness.Start(t)
	id := runPod(t, d, hostNSConfig("pf-host"))
	port := freePort(t)
	hostDecoy(t, port)
	got, err := spdyGet(t, portForwardURL(t, d, id, port), port, "/")
	if err != nil {
		t.Fatal(err)
	}
	if got != "host" {
		t.Fatalf("host-network pod: forward answered %q", got)
	}
}

func TestPortForwardErrors(t *testing.T) {
	pn := harness.PodNetwork(t)
	d := harness.Start(t, harness.WithCNI(pn.ConfDir))
	ctx := harness.Ctx(t)
	for name, tc := range map[string]struct {
		req  *runtimeapi.PortForwardRequest
		code codes.Code
	}{
		"no pod":      {&runtimeapi.PortForwardRequest{Port: []int32{80}}, codes.InvalidArgument},
		"bad port":    {&runtimeapi.PortForwardRequest{PodSandboxId: "x", Port: []int32{0}}, codes.InvalidArgument},
		"unknown pod": {&runtimeapi.PortForwardRequest{PodSandboxId: "0123456789abcdef", Port: []int32{80}}, codes.NotFound},
	} {
		if _, err := d.Runtime.PortForward(ctx, tc.req); status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", name, err, tc.code)
		}
	}

	id := runPod(t, d, podConfig("pf-stopped"))
	_, info := podStatus(t, d, id)
	port := freePort(t)
	httpInPod(t, info, "127.0.0.1:"+strconv.Itoa(port))
	sessionURL := portForwardURL(t, d, id, port)
	// Stopped between the URL and the session: the forward fails, it
	// does not fall back to the host.
	hostDecoy(t, port)
	stopPod(t, d, id)
	if got, err := spdyGet(t, sessionURL, port, "/"); err == nil {
		t.Fatalf("forward to a stopped pod answered %q", got)
	}
	if _, err := d.Runtime.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: id, Port: []int32{int32(port)}}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("PortForward to a stopped pod: %v, want FailedPrecondition", err)
	}

	// Exec and Attach validate, then need the container manager: until it
	// is wired they say which RPC is missing, after it the container is unknown.
	_, err := d.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "nope", Cmd: []string{"sh"}, Stdout: true})
	if c := status.Code(err); !(c == codes.NotFound || c == codes.Unimplemented && strings.Contains(err.Error(), "Exec")) {
		t.Errorf("Exec on an unknown container: %v", err)
	}
	_, err = d.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "nope", Stdout: true})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("Exec without cmd: %v", err)
	}
	_, err = d.Runtime.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: "nope", Tty: true, Stdout: true, Stderr: true})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("Attach with tty and stderr: %v", err)
	}
}

// TestPortForwardSessionsLeaveNothing opens and closes many sessions: the
// daemon's descriptors and threads must come back to where they were.
func TestPortForwardSessionsLeaveNothing(t *testing.T) {
	pn := harness.PodNetwork(t)
	d := harness.Start(t, harness.WithCNI(pn.ConfDir))
	cfg := podConfig("pf-leak")
	cfg.Hostname = "pod-leak"
	id := runPod(t, d, cfg)
	_, info := podStatus(t, d, id)
	port := freePort(t)
	httpInPod(t, info, "127.0.0.1:"+strconv.Itoa(port))

	get := func(i int) {
		t.Helper()
		got, err := spdyGet(t, portForwardURL(t, d, id, port), port, fmt.Sprintf("/%d", i), i%2 == 1)
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		if want := fmt.Sprintf("http from pod-leak /%d", i); got != want {
			t.Fatalf("session %d: %q, want %q", i, got, want)
		}
	}
	for i := range 10 { // warm up pools and threads before measuring
		get(i)
	}
	time.Sleep(500 * time.Millisecond)
	pid := d.PID()
	fds, threads := countEntries(t, pid, "fd"), countEntries(t, pid, "task")

	for i := range 200 {
		get(i)
	}
	var nowFDs, nowThreads int
	deadline := time.Now().Add(testutil.Scaled(20 * time.Second))
	for {
		nowFDs, nowThreads = countEntries(t, pid, "fd"), countEntries(t, pid, "task")
		// Go keeps idle threads: a few more are no leak, one per session would be.
		if nowFDs <= fds && nowThreads <= threads+4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 200 sessions: fds %d (were %d), threads %d (were %d)", nowFDs, fds, nowThreads, threads)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("after 200 sessions: fds %d (were %d), threads %d (were %d)", nowFDs, fds, nowThreads, threads)
}

func countEntries(t *testing.T, pid int, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/%s", pid, dir))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// repoRoot is the module root, where hack/deps.sh puts crictl.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal(errors.New("go.mod not found above the test directory"))
		}
		dir = parent
	}
}
