// Package podinit is the process that creates a pod's namespaces and, for a
// pod that shares one PID namespace, stays as its PID 1 to reap orphans. It
// is kept apart from package sandbox so that the lean crisp-monitor binary
// can link it without the daemon's dependencies: a reaper lives as long as
// its pod, and every page it touches is paid per pod.
package podinit

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Command is the hidden subcommand, of both crisp and crisp-monitor, that
// the daemon starts in new namespaces (sandbox's pinner) when a pod needs a
// process for them: a PID namespace's reaper, or a user namespace, which a
// thread of a multi-threaded process cannot enter. The network, IPC and
// UTS namespaces alone are made on a thread of the daemon that exits.
const Command = "pod-init"

// Env carries the Spec to the child as JSON.
const Env = "CRISP_POD_INIT"

// File descriptors of the two pipes between daemon and child.
const (
	// statusFD: the child writes "ok\n" once set up, or "error: ...\n".
	statusFD = 3
	// releaseFD: the daemon writes 'k' to keep a reaper, or closes it to
	// let the child exit. EOF without 'k' (daemon died while pinning)
	// always means exit, so an untracked reaper cannot be left behind.
	releaseFD = 4
)

const initProcName = "crisp-pod-init"

// Spec is what the child applies inside its new namespaces.
type Spec struct {
	// Hostname is set when the child has its own UTS namespace.
	Hostname string            `json:"hostname,omitempty"`
	Sysctls  map[string]string `json:"sysctls,omitempty"`
	// Reaper keeps the child as PID 1 of the pod's PID namespace.
	Reaper bool `json:"reaper,omitempty"`
}

// Main is the child's whole life; main calls it first thing when
// os.Args[1] is Command. It never returns.
func Main() {
	// The executable is /proc/self/exe, which ps would show as "exe".
	if name, err := unix.BytePtrFromString(initProcName); err == nil {
		_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(name)), 0, 0, 0)
	}
	status := os.NewFile(statusFD, "status")
	release := os.NewFile(releaseFD, "release")
	var spec Spec
	err := json.Unmarshal([]byte(os.Getenv(Env)), &spec)
	if err == nil {
		err = spec.Apply()
	}
	if err != nil {
		fmt.Fprintf(status, "error: %v\n", err)
		os.Exit(1)
	}
	if _, err := status.WriteString("ok\n"); err != nil {
		os.Exit(1)
	}
	status.Close()
	var b [1]byte
	n, _ := release.Read(b[:])
	release.Close()
	if spec.Reaper && n == 1 && b[0] == 'k' {
		// The Go reaper below is the fallback; the C one is ~8x smaller.
		_ = execReaper()
		reap()
	}
	os.Exit(0)
}

// Apply runs in the pod's new namespaces: in the child, or on the daemon's
// thread that made them. /proc/sys resolves net, IPC and UTS sysctls
// against the namespaces of the task (thread) that opens the file, so
// writing them there configures the pod's namespaces, not the host's.
func (s *Spec) Apply() error {
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("sethostname %q: %w", s.Hostname, err)
		}
	}
	for k, v := range s.Sysctls {
		if k == "kernel.domainname" || k == "kernel/domainname" {
			// The file is the node root's; in a pod user namespace only
			// the syscall, checked against the UTS namespace's owner,
			// lets the pod's root set it.
			if err := unix.Setdomainname([]byte(v)); err != nil {
				return fmt.Errorf("sysctl %s=%s: %w", k, v, err)
			}
			continue
		}
		if err := os.WriteFile(sysctlPath(k), []byte(v), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", k, v, err)
		}
	}
	return nil
}

// sysctlPath maps net.ipv4.ip_forward to /proc/sys/net/ipv4/ip_forward. A key
// already in slash form keeps its dots, which is how an interface name with
// a dot (eth0.100) is written.
func sysctlPath(key string) string {
	if !strings.Contains(key, "/") {
		key = strings.ReplaceAll(key, ".", "/")
	}
	return filepath.Join("/proc/sys", key)
}
