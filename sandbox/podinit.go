package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// InitCommand is the hidden subcommand of the crisp binary that creates a
// pod's namespaces: the daemon re-executes itself with it in new namespaces
// (see spawnPodInit), so no namespace work ever runs on the daemon's threads.
const InitCommand = "pod-init"

// initEnv carries the initSpec to the child as JSON.
const initEnv = "CRISP_POD_INIT"

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

// initSpec is what the child applies inside its new namespaces.
type initSpec struct {
	// Hostname is set when the child has its own UTS namespace.
	Hostname string            `json:"hostname,omitempty"`
	Sysctls  map[string]string `json:"sysctls,omitempty"`
	// Reaper keeps the child as PID 1 of the pod's PID namespace.
	Reaper bool `json:"reaper,omitempty"`
}

// InitMain is the child's whole life; main calls it first thing when
// os.Args[1] is InitCommand. It never returns.
func InitMain() {
	// The executable is /proc/self/exe, which ps would show as "exe".
	if name, err := unix.BytePtrFromString(initProcName); err == nil {
		_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(name)), 0, 0, 0)
	}
	status := os.NewFile(statusFD, "status")
	release := os.NewFile(releaseFD, "release")
	var spec initSpec
	err := json.Unmarshal([]byte(os.Getenv(initEnv)), &spec)
	if err == nil {
		err = spec.apply()
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
		reap()
	}
	os.Exit(0)
}

// apply runs in the child's namespaces. /proc/sys resolves net, IPC and UTS
// sysctls against the namespaces of the process that opens the file, so
// writing them here configures the pod's namespaces, not the host's.
func (s *initSpec) apply() error {
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("sethostname %q: %w", s.Hostname, err)
		}
	}
	for k, v := range s.Sysctls {
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
