// Package cinit starts a process in a running container (an exec) through a
// small init written in C (cinit.c) rather than libcontainer's, which is
// the monitor's binary re-executed with its Go runtime started, its whole
// configuration decoded and the container's seccomp profile compiled for
// every exec: on a node where a page fault is dear that is most of an
// exec's time (README, "ExecSync from the monitor").
//
// The C init does what libcontainer's setns init does, in the same order:
// the container's oom_score_adj and rlimits, setns into the container
// init's namespaces through a pidfd, a clone into its pid namespace that
// makes the process the monitor's child, then setsid, the session keyring,
// no_new_privs, umask, seccomp (the filter libcontainer loads, compiled once
// per container: see seccomp.go), the fds, the working directory, HOME,
// the bounding set, the user and groups, the capabilities, the PATH lookup
// and execve. The monitor moves it into the container's cgroups before it
// reads its request. What it does not implement (a terminal, AppArmor,
// SELinux, scheduler, I/O priority, CPU affinity, a seccomp listener,
// rootless containers, Intel RDT) makes Prepare or Start return an
// Unsupported error, and the caller uses libcontainer.
//
// It is started from a sealed copy of the binary (libcontainer's exeseal),
// and is not dumpable until its execve, so that nothing in the container
// can reach the host's binary through /proc/PID/exe (CVE-2019-5736).
package cinit

/*
#cgo CFLAGS: -Wall -O2
#include "cinit.h"
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/sys/capability"
	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/exeseal"
	"golang.org/x/sys/unix"
)

// Unsupported is the error of a container or process that the C init does
// not handle: the caller starts it with libcontainer.
type Unsupported struct{ What string }

func (e *Unsupported) Error() string { return "the C init does not support " + e.What }

// IsUnsupported reports whether err is an Unsupported.
func IsUnsupported(err error) bool {
	var u *Unsupported
	return errors.As(err, &u)
}

// Refused is the error of a start whose clone into the container's cgroups
// was refused (their pids.max).
type Refused struct{ Msg string }

func (e *Refused) Error() string { return e.Msg }

// Target is a running container as the C init needs it; it holds a pidfd
// of the container's init and a sealed copy of the binary.
type Target struct {
	id      string
	cfg     *configs.Config
	pidfd   *os.File
	nsFlags uint32
	cgroups []string // directories whose cgroup.procs the process joins
	exe     *os.File
	bpf     []byte // the container's seccomp filter, struct sock_filter[]
	bpfFlag uint32
}

// Prepare loads what every exec in lc needs. initPid is the container's init,
// a child of the caller (so its pid cannot be reused while Prepare runs).
// tmpDir is where the binary's sealed copy is made.
func Prepare(lc *libcontainer.Container, initPid int, tmpDir string) (*Target, error) {
	cfg := lc.Config()
	st, err := lc.State()
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.RootlessEUID || cfg.RootlessCgroups:
		return nil, &Unsupported{"rootless containers"}
	case cfg.AppArmorProfile != "":
		return nil, &Unsupported{"AppArmor"}
	case cfg.ProcessLabel != "":
		return nil, &Unsupported{"SELinux"}
	case cfg.Personality != nil:
		return nil, &Unsupported{"a personality"}
	case cfg.MemoryPolicy != nil:
		return nil, &Unsupported{"a memory policy"}
	case st.IntelRdtPath != "":
		return nil, &Unsupported{"Intel RDT"}
	}
	t := &Target{id: lc.ID(), cfg: &cfg}
	if cfg.Seccomp != nil {
		if t.bpf, t.bpfFlag, err = compileSeccomp(cfg.Seccomp); err != nil {
			return nil, err
		}
	}
	for _, dir := range st.CgroupPaths {
		if dir != "" && !slices.Contains(t.cgroups, dir) {
			t.cgroups = append(t.cgroups, dir)
		}
	}
	if t.nsFlags, err = nsFlags(initPid); err != nil {
		return nil, err
	}
	fd, err := unix.PidfdOpen(initPid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd of the container's init: %w", err)
	}
	t.pidfd = os.NewFile(uintptr(fd), "pidfd")
	if t.exe, err = exeseal.CloneSelfExe(tmpDir); err != nil {
		t.Close()
		return nil, fmt.Errorf("sealed copy of the binary: %w", err)
	}
	return t, nil
}

// Close releases the target's descriptors.
func (t *Target) Close() {
	if t.pidfd != nil {
		t.pidfd.Close()
	}
	if t.exe != nil {
		t.exe.Close()
	}
}

var nsTypes = []struct {
	name string
	flag uint32
}{
	{"user", unix.CLONE_NEWUSER}, {"mnt", unix.CLONE_NEWNS}, {"pid", unix.CLONE_NEWPID},
	{"net", unix.CLONE_NEWNET}, {"ipc", unix.CLONE_NEWIPC}, {"uts", unix.CLONE_NEWUTS},
	{"cgroup", unix.CLONE_NEWCGROUP}, {"time", unix.CLONE_NEWTIME},
}

// nsFlags are the namespaces of pid that are not the caller's: setns into
// one's own user namespace is an error, and the others are no-ops.
func nsFlags(pid int) (uint32, error) {
	var flags uint32
	for _, ns := range nsTypes {
		var self, other unix.Stat_t
		if err := unix.Stat("/proc/self/ns/"+ns.name, &self); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // the kernel has no such namespace
			}
			return 0, err
		}
		if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/"+ns.name, &other); err != nil {
			return 0, fmt.Errorf("namespaces of the container's init: %w", err)
		}
		if self.Ino != other.Ino || self.Dev != other.Dev {
			flags |= ns.flag
		}
	}
	return flags, nil
}

// Stdio is an exec's standard streams; a nil one is /dev/null.
type Stdio struct{ Stdin, Stdout, Stderr *os.File }

// Start starts p in the container and returns its pid: a child of the
// caller, which must reap it, and must not reap anything else meanwhile
// (the C init's first process is reaped here). mark, if not nil, is
// called as each step ends (the -v=4 phase log): cinit.spawn,
// cinit.cgroup-join, cinit.setns+clone+exec.
func (t *Target) Start(p *libcontainer.Process, stdio Stdio, mark func(step string)) (int, error) {
	if mark == nil {
		mark = func(string) {}
	}
	req, err := t.request(p)
	if err != nil {
		return 0, err
	}
	files := []*os.File{stdio.Stdin, stdio.Stdout, stdio.Stderr}
	for i, f := range files {
		if f == nil {
			null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			if err != nil {
				return 0, err
			}
			defer null.Close()
			files[i] = null
		}
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer reqR.Close()
	defer reqW.Close()
	repR, repW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer repR.Close()
	defer repW.Close()
	// The binary is one of the child's files and executed as such: Go's
	// fork moves descriptors above the highest of them, which may be the
	// binary's own number in the parent (golang/go#61751).
	files = append(files, reqR, repW, t.pidfd, t.exe)
	helper, err := os.StartProcess("/proc/self/fd/"+strconv.Itoa(C.CINIT_EXE_FD), []string{"crisp-cinit"}, &os.ProcAttr{
		Env:   []string{C.CINIT_ENV + "=1"},
		Files: files,
	})
	if err != nil {
		return 0, fmt.Errorf("start the exec's init: %w", err)
	}
	reqR.Close()
	repW.Close()
	defer helper.Wait()
	mark("cinit.spawn")
	// Into the container's cgroups before the clone, so that the
	// process starts there and the clone counts against their pids.max.
	for _, dir := range t.cgroups {
		if err := cgroups.WriteCgroupProc(dir, helper.Pid); err != nil {
			// On cgroup v2 a container that made sub-cgroups of its
			// own (systemd or a runtime inside) cannot take processes
			// in its cgroup: libcontainer then joins its init's, and
			// knows the other cases too.
			helper.Kill()
			return 0, &Unsupported{fmt.Sprintf("joining the container's cgroup %s (%v)", dir, err)}
		}
	}
	mark("cinit.cgroup-join")
	_, werr := reqW.Write(req)
	reqW.Close()
	// EOF once the process has exec'd (the report pipe closes on exec)
	// or failed.
	rep, rerr := io.ReadAll(repR)
	mark("cinit.setns+clone+exec")
	pid, msg := parseReport(rep)
	if msg == "" && (werr != nil || rerr != nil || pid <= 0) {
		msg = fmt.Sprintf("the exec's init ended without starting it (request: %v, report: %v)", werr, rerr)
	}
	if msg != "" {
		if pid > 0 {
			// It failed before its execve: the monitor's child.
			unix.Kill(pid, unix.SIGKILL)
			var ws unix.WaitStatus
			for {
				if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
					break
				}
			}
		}
		// The words libcontainer puts before its init's errors.
		msg = "unable to start container process: " + msg
		if strings.Contains(msg, C.CINIT_CLONE_REFUSED) {
			return 0, &Refused{msg}
		}
		return 0, errors.New(msg)
	}
	return pid, nil
}

// parseReport reads the C init's records: the pid it started, and the
// error of whichever of its processes failed.
func parseReport(b []byte) (pid int, msg string) {
	for len(b) > 0 {
		switch b[0] {
		case C.CINIT_PID:
			if len(b) < 5 {
				return pid, "the exec's init sent a short record"
			}
			pid = int(int32(binary.NativeEndian.Uint32(b[1:5])))
			b = b[5:]
		case C.CINIT_ERROR:
			return pid, string(b[1:])
		default:
			return pid, fmt.Sprintf("the exec's init sent %q", b)
		}
	}
	return pid, ""
}

const (
	tagArg = iota + 1
	tagEnv
	tagCwd
	tagUID
	tagGID
	tagGroup
	tagCaps
	tagRlimit
	tagNNP
	tagUmask
	tagOOM
	tagNSFlags
	tagSeccomp
	tagKeyring
	tagEnd
)

type encoder struct{ b []byte }

func (e *encoder) add(tag uint32, v []byte) {
	e.b = binary.NativeEndian.AppendUint32(e.b, tag)
	e.b = binary.NativeEndian.AppendUint32(e.b, uint32(len(v)))
	e.b = append(e.b, v...)
}

func (e *encoder) u32(tag, v uint32) { e.add(tag, binary.NativeEndian.AppendUint32(nil, v)) }

// request encodes p as the C init reads it, with what libcontainer takes
// from the container's configuration where the process leaves it empty
// (its newInitConfig).
func (t *Target) request(p *libcontainer.Process) ([]byte, error) {
	switch {
	case p.ConsoleSocket != nil:
		return nil, &Unsupported{"a terminal"}
	case p.AppArmorProfile != "" || p.Label != "":
		return nil, &Unsupported{"AppArmor or SELinux"}
	case p.IOPriority != nil || t.cfg.IOPriority != nil:
		return nil, &Unsupported{"an I/O priority"}
	case p.Scheduler != nil || t.cfg.Scheduler != nil:
		return nil, &Unsupported{"a scheduler"}
	case p.CPUAffinity != nil || t.cfg.ExecCPUAffinity != nil:
		return nil, &Unsupported{"a CPU affinity"}
	case len(p.ExtraFiles) > 0 || len(p.SubCgroupPaths) > 0:
		return nil, &Unsupported{"extra files or sub-cgroups"}
	case len(p.Args) == 0:
		return nil, errors.New("exec: no arguments")
	}
	env, err := dedupEnv(p.Env)
	if err != nil {
		return nil, err
	}
	var e encoder
	for _, a := range p.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, fmt.Errorf("argument %q contains a nul byte", a)
		}
		e.add(tagArg, []byte(a))
	}
	for _, kv := range env {
		e.add(tagEnv, []byte(kv))
	}
	if strings.IndexByte(p.Cwd, 0) >= 0 {
		return nil, errors.New("cwd contains a nul byte")
	}
	e.add(tagCwd, []byte(p.Cwd))
	e.u32(tagUID, uint32(p.UID))
	e.u32(tagGID, uint32(p.GID))
	for _, g := range p.AdditionalGroups {
		e.u32(tagGroup, uint32(g))
	}
	caps := t.cfg.Capabilities
	if p.Capabilities != nil {
		caps = p.Capabilities
	}
	if caps != nil {
		e.add(tagCaps, capMasks(caps))
	}
	rlimits := t.cfg.Rlimits
	if len(p.Rlimits) > 0 {
		rlimits = p.Rlimits
	}
	for _, rl := range rlimits {
		v := binary.NativeEndian.AppendUint32(nil, uint32(rl.Type))
		v = binary.NativeEndian.AppendUint64(v, rl.Soft)
		v = binary.NativeEndian.AppendUint64(v, rl.Hard)
		e.add(tagRlimit, v)
	}
	nnp := t.cfg.NoNewPrivileges
	if p.NoNewPrivileges != nil {
		nnp = *p.NoNewPrivileges
	}
	if nnp {
		e.add(tagNNP, nil)
	}
	if t.cfg.Umask != nil {
		e.u32(tagUmask, *t.cfg.Umask)
	}
	if t.cfg.OomScoreAdj != nil {
		e.add(tagOOM, []byte(strconv.Itoa(*t.cfg.OomScoreAdj)))
	}
	e.u32(tagNSFlags, t.nsFlags)
	if t.bpf != nil {
		e.add(tagSeccomp, append(binary.NativeEndian.AppendUint32(nil, t.bpfFlag), t.bpf...))
	}
	if !t.cfg.NoNewKeyring {
		e.add(tagKeyring, []byte("_ses."+t.id))
	}
	e.add(tagEnd, nil)
	return e.b, nil
}

// dedupEnv is libcontainer's prepareEnv without HOME, which the C init
// looks up in the container: the last of each key wins, in the order of
// the last occurrences.
func dedupEnv(env []string) ([]string, error) {
	out := make([]string, 0, len(env))
	saw := make(map[string]bool, len(env))
	for n := len(env); n > 0; n-- {
		kv := env[n-1]
		i := strings.IndexByte(kv, '=')
		if i == -1 {
			return nil, errors.New("invalid environment variable: missing '='")
		}
		if i == 0 {
			return nil, errors.New("invalid environment variable: name cannot be empty")
		}
		key := kv[:i]
		if saw[key] {
			continue
		}
		saw[key] = true
		if strings.IndexByte(kv, 0) >= 0 {
			return nil, fmt.Errorf("invalid environment variable %q: contains nul byte (\\x00)", key)
		}
		if key == "HOME" && kv[i+1:] == "" {
			continue // set from the container's /etc/passwd
		}
		out = append(out, kv)
	}
	slices.Reverse(out)
	return out, nil
}

var capNumbers = sync.OnceValue(func() map[string]uint {
	last, err := capability.LastCap()
	m := make(map[string]uint)
	for _, c := range capability.ListKnown() {
		if err == nil && c > last {
			continue // unknown to this kernel: libcontainer skips them too
		}
		m["CAP_"+strings.ToUpper(c.String())] = uint(c)
	}
	return m
})

// capMasks are the sets as the C init takes them: bounding, effective,
// inheritable, permitted, ambient. Names the kernel does not know are
// left out, as libcontainer does (it warns).
func capMasks(c *configs.Capabilities) []byte {
	var b []byte
	for _, set := range [][]string{c.Bounding, c.Effective, c.Inheritable, c.Permitted, c.Ambient} {
		var mask uint64
		for _, name := range set {
			if n, ok := capNumbers()[name]; ok && n < 64 {
				mask |= 1 << n
			}
		}
		b = binary.NativeEndian.AppendUint64(b, mask)
	}
	return b
}
