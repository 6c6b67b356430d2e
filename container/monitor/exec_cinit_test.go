package monitor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/internal/phase"
	"github.com/crisp-runtime/crisp/internal/testutil"
)

// TestExecInitsAgree: a process the monitor's C init starts is set up as one
// libcontainer's init starts: user and groups, capabilities, no_new_privs,
// seccomp (a denied syscall, the stub for unknown ones), rlimits,
// namespaces, cgroups, oom_score_adj, environment (duplicates, HOME from
// the container's /etc/passwd), working directory, umask, session,
// descriptors and keyring.
func TestExecInitsAgree(t *testing.T) {
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
	if err := os.WriteFile(filepath.Join(rootfs, "etc", "passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	some := []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	cases := map[string]func(p *specs.Process){
		"as the container": func(p *specs.Process) {},
		"another user": func(p *specs.Process) {
			p.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 20}}
			p.Cwd = "/tmp"
			p.Env = []string{"PATH=/usr/bin", "A=1", "PATH=/bin", "A=2", "HOME="}
			p.Capabilities = &specs.LinuxCapabilities{Bounding: some, Effective: some, Permitted: some, Inheritable: some, Ambient: some}
			p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 512, Hard: 1024}, {Type: "RLIMIT_CORE", Soft: 0, Hard: 0}}
		},
		"without no_new_privs": func(p *specs.Process) {
			p.NoNewPrivileges = false
			p.Capabilities = &specs.LinuxCapabilities{Bounding: some, Effective: some, Permitted: some}
		},
		"by PATH": func(p *specs.Process) {
			p.Args[0] = "app"
		},
	}
	for _, runtimeDefault := range []bool{false, true} {
		c := run(t, testOpts{args: []string{"sleep"}, noLog: true, runtimeDefault: runtimeDefault})
		// A monitor pinned to one CPU: the exec'd process must not be.
		pinToCPU0(t, c.rec.MonitorPid)
		for name, change := range cases {
			if runtimeDefault {
				name += ", RuntimeDefault"
			}
			t.Run(name, func(t *testing.T) {
				self := func(goInit bool) string {
					t.Helper()
					p := execProcess(c, "self")
					change(p)
					c.goInit.Store(goInit)
					defer c.goInit.Store(false)
					var out, errb bytes.Buffer
					pt := phase.Start()
					code, err := c.Exec(phase.With(context.Background(), pt), p, nil, &out, &errb, false, nil)
					if err != nil || code != 0 {
						t.Fatalf("exec (libcontainer's init: %v): code %d, %v, stderr %q", goInit, code, err, errb.String())
					}
					if byC := strings.Contains(pt.String(), "cinit.setns+clone+exec="); byC == goInit {
						t.Fatalf("started by the C init: %v, want %v (steps %s)", byC, !goInit, pt)
					}
					return out.String()
				}
				byC, byGo := self(false), self(true)
				if byC != byGo {
					t.Errorf("the C init's process differs from libcontainer's:\n--- C\n%s--- libcontainer\n%s", byC, byGo)
				}
				for _, want := range []string{"kexec_load operation not permitted", "syscall 1000 function not implemented", "session leader true", "session keyring true", "fds 0 1 2\n"} {
					if !strings.Contains(byC, want) {
						t.Errorf("the C init's process lacks %q:\n%s", want, byC)
					}
				}
			})
		}
	}
}

// TestExecInitsFailAlike: a process neither init can start fails the same
// way with both, and leaves nothing behind.
func TestExecInitsFailAlike(t *testing.T) {
	c := run(t, testOpts{args: []string{"sleep"}, noLog: true})
	// The first exec by each init loads what the next ones reuse.
	for _, goInit := range []bool{false, true} {
		c.goInit.Store(goInit)
		if code, err := c.Exec(context.Background(), execProcess(c, "exit", "0"), nil, nil, nil, false, nil); err != nil || code != 0 {
			t.Fatalf("first exec: %d, %v", code, err)
		}
	}
	c.goInit.Store(false)
	mon := c.rec.MonitorPid
	fds := monitorFDs(t, mon)
	cases := map[string]func(p *specs.Process){
		"not in PATH":     func(p *specs.Process) { p.Args = []string{"nosuch"} },
		"no such file":    func(p *specs.Process) { p.Args = []string{"/bin/nosuch"} },
		"a directory":     func(p *specs.Process) { p.Args = []string{"/tmp"} },
		"relative to cwd": func(p *specs.Process) { p.Args = []string{"app"}; p.Env = []string{"PATH=bin"} },
		"no cwd":          func(p *specs.Process) { p.Cwd = "/nonexistent" },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			start := func(goInit bool) string {
				t.Helper()
				p := execProcess(c, "exit", "0")
				change(p)
				c.goInit.Store(goInit)
				defer c.goInit.Store(false)
				_, err := c.Exec(context.Background(), p, nil, nil, nil, false, nil)
				if err == nil {
					t.Fatalf("exec (libcontainer's init: %v) started", goInit)
				}
				return err.Error()
			}
			byC := start(false)
			if byGo := start(true); byC != byGo {
				t.Errorf("the C init's error differs from libcontainer's:\nC: %s\nlibcontainer: %s", byC, byGo)
			}
			onlyInit(t, c)
			testutil.WaitFor(t, "the monitor's fds back to where they were", 10*time.Second, func() bool {
				return monitorFDs(t, mon) <= fds
			})
			if kids := testutil.Children(mon); len(kids) != 1 {
				t.Errorf("the monitor's children after the failed starts: %v, want the init alone", kids)
			}
		})
	}
}

// pinToCPU0 sets the affinity of every thread of pid to CPU 0, on a
// machine with more than one.
func pinToCPU0(t *testing.T, pid int) {
	t.Helper()
	if runtime.NumCPU() < 2 {
		return
	}
	var set unix.CPUSet
	set.Set(0)
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			t.Fatal(err)
		}
	}
}
