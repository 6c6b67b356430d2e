// Package harness starts real crisp daemons for integration tests: each test
// gets its own socket, root, state and CNI configuration, so tests can run
// next to a crisp that serves the node.
package harness

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/testutil"
)

// Daemon is a running crisp with clients connected to it.
type Daemon struct {
	Dir     string // everything of this daemon lives below Dir
	Socket  string
	Root    string
	State   string
	Config  string // path of the TOML file the daemon was started with
	LogPath string

	Runtime runtimeapi.RuntimeServiceClient
	Images  runtimeapi.ImageServiceClient

	opts options
	cmd  *exec.Cmd
	conn *grpc.ClientConn
	done chan error
}

type options struct {
	cniConfDir string
	extraArgs  []string
	extraTOML  string
	binary     string
	env        []string
	rootSize   string
}

// Option changes how a daemon is started.
type Option func(*options)

// WithCNI points the daemon at a CNI configuration directory (see PodNetwork).
func WithCNI(confDir string) Option { return func(o *options) { o.cniConfDir = confDir } }

// WithArgs adds command-line flags.
func WithArgs(args ...string) Option {
	return func(o *options) { o.extraArgs = append(o.extraArgs, args...) }
}

// WithBinary runs another crisp build than Binary's (the failpoint build).
func WithBinary(path string) Option { return func(o *options) { o.binary = path } }

// WithEnv adds environment variables ("K=V") to the daemon's.
func WithEnv(env ...string) Option {
	return func(o *options) { o.env = append(o.env, env...) }
}

// WithRootSize puts the daemon's root on a tmpfs of this size (e.g. "64m"),
// for tests that fill it up.
func WithRootSize(size string) Option { return func(o *options) { o.rootSize = size } }

// WithTOML appends lines to the generated configuration file.
func WithTOML(s string) Option { return func(o *options) { o.extraTOML += "\n" + s + "\n" } }

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the crisp binary under test: $CRISP_BINARY, or one built once per test process.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("CRISP_BINARY"); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "crisp-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "crisp")
		cmd := exec.Command("go", "build", "-tags", "seccomp", "-o", binPath, "github.com/crisp-runtime/crisp/cmd/crisp")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build crisp: %v\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// RegistryAddr is the loopback registry that serves the test images under
// their upstream names through crisp's mirror configuration.
func RegistryAddr() string {
	if a := os.Getenv("CRISP_TEST_REGISTRY"); a != "" {
		return a
	}
	return "127.0.0.1:5000"
}

// MirroredRegistries are the upstream hosts the test configuration mirrors.
var MirroredRegistries = []string{"docker.io", "registry.k8s.io", "k8s.gcr.io", "gcr.io", "quay.io", "public.ecr.aws"}

// Start runs a crisp daemon for the duration of the test.
func Start(t testing.TB, opts ...Option) *Daemon {
	t.Helper()
	// Short paths: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "crisp-t-")
	if err != nil {
		t.Fatal(err)
	}
	// Searchable, as /var/lib and /run are: the root of a pod with its own
	// user namespace is not the node's root and must reach its rootfs.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{
		Dir:     dir,
		Socket:  filepath.Join(dir, "crisp.sock"),
		Root:    filepath.Join(dir, "root"),
		State:   filepath.Join(dir, "state"),
		Config:  filepath.Join(dir, "crisp.toml"),
		LogPath: filepath.Join(dir, "crisp.log"),
	}
	for _, o := range opts {
		o(&d.opts)
	}
	if d.opts.cniConfDir == "" {
		// An empty directory: the daemon reports NetworkReady=false, which is
		// what image-only tests expect.
		d.opts.cniConfDir = filepath.Join(dir, "cni")
		if err := os.MkdirAll(d.opts.cniConfDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(d.Config, []byte(d.toml()), 0o644); err != nil {
		t.Fatal(err)
	}
	if d.opts.rootSize != "" {
		if err := os.MkdirAll(d.Root, 0o711); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", d.Root, "tmpfs", 0, "size="+d.opts.rootSize+",mode=0711"); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		d.Stop(t)
		// Pods and containers a test left behind must not keep mounts busy,
		// nor outlive the test when it failed.
		unmountBelow(d.Dir)
		if t.Failed() {
			t.Logf("crisp log and state in %s kept for inspection; log tail:\n%s", d.Dir, d.LogTail(40))
			return
		}
		os.RemoveAll(d.Dir)
	})
	d.start(t, d.binary(t))
	return d
}

func (d *Daemon) binary(t testing.TB) string {
	if d.opts.binary != "" {
		return d.opts.binary
	}
	return Binary(t)
}

func (d *Daemon) toml() string {
	var b strings.Builder
	for _, host := range MirroredRegistries {
		// An air-gapped node: the mirror is authoritative, so an image it
		// lacks is NotFound rather than "upstream unreachable".
		fmt.Fprintf(&b, "[registries.%q]\nmirrors = [\"http://%s\"]\nskip_upstream = true\n", host, RegistryAddr())
	}
	b.WriteString(d.opts.extraTOML)
	return b.String()
}

func (d *Daemon) start(t testing.TB, bin string) {
	t.Helper()
	args := []string{
		"--config", d.Config,
		"--listen", d.Socket,
		"--root", d.Root,
		"--state", d.State,
		"--cni-conf-dir", d.opts.cniConfDir,
		"-v=2", "--logtostderr=true",
	}
	// The VM lane (hack/vm) runs the suite once per cgroup driver; a test's
	// own flags come after and win.
	if drv := os.Getenv("CRISP_CGROUP_DRIVER"); drv != "" {
		args = append(args, "--cgroup-driver", drv)
	}
	args = append(args, d.opts.extraArgs...)
	logf, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	if len(d.opts.env) > 0 {
		cmd.Env = append(os.Environ(), d.opts.env...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group, so a terminal's ^C reaches the test, not the daemon first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	logf.Close()
	d.cmd = cmd
	d.done = make(chan error, 1)
	go func() { d.done <- cmd.Wait() }()

	conn, err := grpc.NewClient("unix://"+d.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	d.conn = conn
	d.Runtime = runtimeapi.NewRuntimeServiceClient(conn)
	d.Images = runtimeapi.NewImageServiceClient(conn)

	startWait := testutil.Scaled(30 * time.Second)
	deadline := time.Now().Add(startWait)
	for {
		select {
		case err := <-d.done:
			d.cmd = nil
			t.Fatalf("crisp exited during start-up: %v\n%s", err, d.LogTail(30))
		default:
		}
		if _, err := os.Stat(d.Socket); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), testutil.Scaled(2*time.Second))
			_, err := d.Runtime.Version(ctx, &runtimeapi.VersionRequest{})
			cancel()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("crisp did not answer on %s within %v\n%s", d.Socket, startWait, d.LogTail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PID is the daemon's process id.
func (d *Daemon) PID() int {
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Stop sends SIGTERM and waits for a clean exit, which the daemon owes us.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if d.cmd == nil {
		return
	}
	if d.conn != nil {
		d.conn.Close()
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("crisp did not exit cleanly on SIGTERM: %v\n%s", err, d.LogTail(20))
		}
	case <-time.After(testutil.Scaled(40 * time.Second)):
		_ = d.cmd.Process.Kill()
		<-d.done
		t.Errorf("crisp ignored SIGTERM for %v\n%s", testutil.Scaled(40*time.Second), d.LogTail(20))
	}
	d.cmd = nil
}

// Restart stops the daemon cleanly and starts it again on the same paths.
func (d *Daemon) Restart(t testing.TB) {
	t.Helper()
	d.Stop(t)
	d.start(t, d.binary(t))
}

// Kill9AndRestart kills the daemon with SIGKILL, as a crash would, and starts it again.
func (d *Daemon) Kill9AndRestart(t testing.TB) {
	t.Helper()
	d.Kill9(t)
	d.start(t, d.binary(t))
}

// Kill9 kills the daemon with SIGKILL, as a crash would; StartAgain brings
// it back.
func (d *Daemon) Kill9(t testing.TB) {
	t.Helper()
	if d.cmd != nil {
		d.conn.Close()
		_ = d.cmd.Process.Kill()
		<-d.done
		d.cmd = nil
	}
}

// WaitExit waits up to timeout for the daemon to exit by itself (a
// failpoint's kill) and returns how it ended; ok is false if it still runs.
func (d *Daemon) WaitExit(timeout time.Duration) (state *os.ProcessState, ok bool) {
	if d.cmd == nil {
		return nil, true
	}
	select {
	case <-d.done:
	case <-time.After(timeout):
		return nil, false
	}
	d.conn.Close()
	state = d.cmd.ProcessState
	d.cmd = nil
	return state, true
}

// StartAgain starts a daemon that has exited on the same paths, with env
// as its extra environment instead of what it had.
func (d *Daemon) StartAgain(t testing.TB, env ...string) {
	t.Helper()
	if d.cmd != nil {
		t.Fatal("StartAgain: the daemon still runs")
	}
	d.opts.env = env
	d.start(t, d.binary(t))
}

// LogTail returns the last n lines of the daemon's log.
func (d *Daemon) LogTail(n int) string {
	b, _ := os.ReadFile(d.LogPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Ctx is a context for one RPC in a test: kubelet's two minutes, scaled
// (testutil.Scaled).
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Scaled(2*time.Minute))
	t.Cleanup(cancel)
	return ctx
}

// RequireRegistry fails the test early, with the fix, when the loopback
// registry with the test images is not running.
func RequireRegistry(t testing.TB) {
	t.Helper()
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + RegistryAddr() + "/v2/")
	if err != nil {
		t.Fatalf("test registry at %s is not answering (%v): run `hack/images.sh` (make test does)", RegistryAddr(), err)
	}
	resp.Body.Close()
}
