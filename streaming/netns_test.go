package streaming

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/errdefs"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
}

// testNetNS is a network namespace pinned to a file, like a pod's, with lo
// up and extra addresses on lo standing in for the pod IP.
type testNetNS struct {
	path string
}

// newTestNetNS creates the namespace on a locked thread of its own, which is
// then returned to the host namespace; run runs in the namespace the same way
// (independently of inNetNS, which is what is under test).
func newTestNetNS(t *testing.T, addrs ...string) *testNetNS {
	t.Helper()
	requireRoot(t)
	pin := filepath.Join(t.TempDir(), "net")
	if err := os.WriteFile(pin, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := onThread(func(orig *os.File) error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		if err := unix.Mount("/proc/thread-self/ns/net", pin, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pin: %w", err)
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		for _, a := range addrs {
			addr, err := netlink.ParseAddr(a + "/32")
			if err != nil {
				return err
			}
			if err := netlink.AddrAdd(lo, addr); err != nil {
				return err
			}
		}
		return nil
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(pin, unix.MNT_DETACH) })
	return &testNetNS{path: pin}
}

// onThread runs fn on a fresh locked thread, optionally in the namespace at
// nsPath, and puts the thread back into the host's namespace afterwards.
func onThread(fn func(orig *os.File) error, nsPath string) error {
	res := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			res <- err
			return
		}
		defer orig.Close()
		if nsPath != "" {
			f, err := os.Open(nsPath)
			if err != nil {
				res <- err
				return
			}
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
			if err != nil {
				res <- err
				return
			}
		}
		fnErr := fn(orig)
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			res <- errors.Join(fnErr, err) // the thread stays locked and dies
			return
		}
		goruntime.UnlockOSThread()
		res <- fnErr
	}()
	return <-res
}

// listen starts a server in the namespace that answers every connection with
// its name and closes.
func (n *testNetNS) listen(t *testing.T, network, addr, name string) net.Listener {
	t.Helper()
	var l net.Listener
	if err := onThread(func(*os.File) error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	}, n.path); err != nil {
		t.Fatal(err)
	}
	serveName(t, l, name)
	return l
}

func serveName(t *testing.T, l net.Listener, name string) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, name)
			c.Close()
		}
	}()
}

func port(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }

func readAll(t *testing.T, c net.Conn) string {
	t.Helper()
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hostAndPod binds a listener in the pod and one on the host on the same
// loopback port, so that a forward that dials in the wrong namespace is
// caught by the answer.
func hostAndPod(t *testing.T, ns *testNetNS) int {
	t.Helper()
	for range 20 {
		pod := ns.listen(t, "tcp4", "127.0.0.1:0", "pod")
		host, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port(pod)))
		if err != nil {
			pod.Close() // port taken on the host: try another
			continue
		}
		serveName(t, host, "host")
		return port(pod)
	}
	t.Fatal("no port free both in the pod and on the host")
	return 0
}

func TestDialPodReachesPodNotHost(t *testing.T) {
	ns := newTestNetNS(t)
	p := hostAndPod(t, ns)

	c, err := dialPod(context.Background(), PodNetwork{ID: "pod", NetNS: ns.path}, p)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c); got != "pod" {
		t.Fatalf("forward in the pod's namespace answered by %q", got)
	}
	// A host-network pod is the host.
	c, err = dialPod(context.Background(), PodNetwork{ID: "hostpod"}, p)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c); got != "host" {
		t.Fatalf("host-network forward answered by %q", got)
	}
	assertThreadsInHostNetNS(t)
}

func TestDialPodFallsBackToIPv6AndPodIP(t *testing.T) {
	const podIP = "192.0.2.10" // TEST-NET-1, on the pod's lo only
	ns := newTestNetNS(t, podIP)
	v6 := ns.listen(t, "tcp6", "[::1]:0", "v6")
	c, err := dialPod(context.Background(), PodNetwork{NetNS: ns.path}, port(v6))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c); got != "v6" {
		t.Fatalf("got %q", got)
	}

	ip := ns.listen(t, "tcp4", podIP+":0", "podip")
	c, err = dialPod(context.Background(), PodNetwork{NetNS: ns.path, IPs: []string{podIP}}, port(ip))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c); got != "podip" {
		t.Fatalf("got %q", got)
	}
}

func TestDialPodRefusedAndStopped(t *testing.T) {
	ns := newTestNetNS(t)
	l := ns.listen(t, "tcp4", "127.0.0.1:0", "x")
	p := port(l)
	l.Close()
	if _, err := dialPod(context.Background(), PodNetwork{NetNS: ns.path}, p); !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("closed port: want connection refused, got %v", err)
	}

	// A stopped pod's pin is unmounted (a plain file stays) or removed.
	plain := filepath.Join(t.TempDir(), "net")
	os.WriteFile(plain, nil, 0o600)
	for _, path := range []string{plain, filepath.Join(t.TempDir(), "absent")} {
		_, err := dialPod(context.Background(), PodNetwork{NetNS: path}, p)
		if !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Errorf("%s: want FailedPrecondition, got %v", path, err)
		}
	}
	assertThreadsInHostNetNS(t)
}

// TestDialPodManyKeepsThreadsHome dials from many goroutines at once: any
// thread left in a pod's namespace would be reused for other work.
func TestDialPodManyKeepsThreadsHome(t *testing.T) {
	ns := newTestNetNS(t)
	p := hostAndPod(t, ns)
	errs := make(chan error, 50)
	for range cap(errs) {
		go func() {
			c, err := dialPod(context.Background(), PodNetwork{NetNS: ns.path}, p)
			if err != nil {
				errs <- err
				return
			}
			b, err := io.ReadAll(c)
			c.Close()
			if err == nil && string(b) != "pod" {
				err = fmt.Errorf("answered by %q", b)
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	assertThreadsInHostNetNS(t)
}

func assertThreadsInHostNetNS(t *testing.T) {
	t.Helper()
	want, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	tasks, _ := filepath.Glob("/proc/self/task/*/ns/net")
	for _, task := range tasks {
		got, err := os.Readlink(task)
		if err != nil {
			continue // the thread exited
		}
		if got != want {
			t.Errorf("%s is in %s, not the host's %s", task, got, want)
		}
	}
}
