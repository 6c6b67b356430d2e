package cinit

import (
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"golang.org/x/sys/unix"
)

// TestStartWithHighDescriptors runs the C init (this test binary has it)
// for a process in the test's own namespaces, with the binary's descriptor
// right above the stdio's: Go's fork moves descriptors there
// (golang/go#61751), which made "/proc/self/fd/N" name a pipe and the
// start fail with "permission denied".
func TestStartWithHighDescriptors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the C init sets the process's groups and ids: needs root")
	}
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	pidfd, err := unix.PidfdOpen(sleep.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	const exeFd = 100
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, d := range []struct{ from, to int }{{int(self.Fd()), exeFd}, {int(w.Fd()), exeFd - 1}} {
		if err := unix.Dup3(d.from, d.to, unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	out := os.NewFile(exeFd-1, "stdout")
	tg := &Target{id: "test", cfg: &configs.Config{NoNewKeyring: true}, pidfd: os.NewFile(uintptr(pidfd), "pidfd"), exe: os.NewFile(exeFd, "exe")}
	defer tg.Close()
	pid, err := tg.Start(&libcontainer.Process{Args: []string{"/bin/echo", "hello"}, Env: []string{"PATH=/bin"}, Cwd: "/"}, Stdio{Stdout: out}, nil)
	out.Close()
	if err != nil {
		t.Fatal(err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil || ws.ExitStatus() != 0 {
		t.Fatalf("the exec'd process: %v, status %v", err, ws)
	}
	if got, _ := io.ReadAll(r); string(got) != "hello\n" {
		t.Errorf("output %q, want hello", got)
	}
}

func TestDedupEnv(t *testing.T) {
	got, err := dedupEnv([]string{"A=1", "PATH=/x", "B=", "A=2", "HOME=", "PATH=/bin"})
	if want := []string{"B=", "A=2", "PATH=/bin"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("dedupEnv = %q, %v; want %q", got, err, want)
	}
	for _, bad := range [][]string{{"NOEQUALS"}, {"=v"}, {"A=a\x00b"}} {
		if _, err := dedupEnv(bad); err == nil {
			t.Errorf("dedupEnv(%q) took it", bad)
		}
	}
}

func TestParseReport(t *testing.T) {
	pidRec := func(pid int32) []byte {
		return append([]byte{'P'}, binary.NativeEndian.AppendUint32(nil, uint32(pid))...)
	}
	cases := []struct {
		in      []byte
		pid     int
		wantMsg string
	}{
		{pidRec(42), 42, ""},
		{append(pidRec(42), "Eexec: boom"...), 42, "exec: boom"},
		{append([]byte("Echdir failed"), pidRec(7)...), 0, "chdir failed"},
		{[]byte("P\x01"), 0, "short record"},
		{[]byte("?"), 0, "sent"},
		{nil, 0, ""},
	}
	for _, c := range cases {
		pid, msg := parseReport(c.in)
		if pid != c.pid || (c.wantMsg == "") != (msg == "") || !strings.Contains(msg, c.wantMsg) {
			t.Errorf("parseReport(%q) = %d, %q; want %d, %q", c.in, pid, msg, c.pid, c.wantMsg)
		}
	}
}

func TestCapMasks(t *testing.T) {
	b := capMasks(&configs.Capabilities{
		Bounding:  []string{"CAP_CHOWN", "CAP_KILL", "CAP_NO_SUCH_THING"},
		Effective: []string{"CAP_NET_BIND_SERVICE"},
		Ambient:   []string{"CAP_SYS_ADMIN"},
	})
	var got [5]uint64
	for i := range got {
		got[i] = binary.NativeEndian.Uint64(b[8*i:])
	}
	want := [5]uint64{1<<0 | 1<<5, 1 << 10, 0, 0, 1 << 21}
	if got != want {
		t.Errorf("capMasks = %x, want %x", got, want)
	}
}
