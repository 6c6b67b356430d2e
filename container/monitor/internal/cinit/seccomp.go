package cinit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/seccomp"
	"golang.org/x/sys/unix"
)

// The container's seccomp filter is the one libcontainer loads: a child of
// the monitor (this binary, dumpEnv set) loads it with libcontainer's own
// InitSeccomp and stops, and the monitor copies the loaded program out of
// the kernel (PTRACE_SECCOMP_GET_FILTER) and kills it. The filter is the
// same for every exec of the container, so this runs once per monitor;
// compiling it in each exec's init was a quarter of an exec's time.

const dumpEnv = "_CRISP_SECCOMP_DUMP"

func init() {
	if os.Getenv(dumpEnv) != "" {
		// The filter goes on the thread that loads it: keep that the
		// main thread, whose id is the pid the monitor traces.
		runtime.LockOSThread()
	}
}

// DumpIfRequested loads the filter read from stdin when the binary was
// started for it, says so on stdout and waits to be killed. main must call
// it first thing; it does not return in that case.
func DumpIfRequested() {
	if os.Getenv(dumpEnv) == "" {
		return
	}
	var cfg configs.Seccomp
	if err := json.NewDecoder(os.Stdin).Decode(&cfg); err != nil {
		fmt.Fprintf(os.Stdout, "E%v", err)
		os.Exit(1)
	}
	if _, err := seccomp.InitSeccomp(&cfg); err != nil {
		fmt.Fprintf(os.Stdout, "E%v", err)
		os.Exit(1)
	}
	os.Stdout.Write([]byte{'R'})
	var b [1]byte
	os.Stdin.Read(b[:]) // EOF when the monitor is done (or gone)
	os.Exit(0)
}

// seccompFlags are the SECCOMP_FILTER_FLAG_* a profile may ask for; the
// others (a listener, TSYNC) are libcontainer's to handle.
var seccompFlags = map[string]uint32{
	"SECCOMP_FILTER_FLAG_LOG":                unix.SECCOMP_FILTER_FLAG_LOG,
	"SECCOMP_FILTER_FLAG_SPEC_ALLOW":         unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
	"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
}

// compileSeccomp returns the program libcontainer would load for cfg, as
// struct sock_filter[], and the flags to load it with.
func compileSeccomp(cfg *configs.Seccomp) ([]byte, uint32, error) {
	if cfg.DefaultAction == configs.Notify || cfg.ListenerPath != "" {
		return nil, 0, &Unsupported{"a seccomp listener"}
	}
	for _, s := range cfg.Syscalls {
		if s.Action == configs.Notify {
			return nil, 0, &Unsupported{"a seccomp listener"}
		}
	}
	var flags uint32
	for _, f := range cfg.Flags {
		v, ok := seccompFlags[string(f)]
		if !ok {
			return nil, 0, &Unsupported{"seccomp flag " + string(f)}
		}
		flags |= v
	}
	in, err := json.Marshal(cfg)
	if err != nil {
		return nil, 0, err
	}
	prog, err := dumpFilter(in)
	if err != nil {
		return nil, 0, fmt.Errorf("seccomp filter for the C init: %w", err)
	}
	return prog, flags, nil
}

// dumpFilter starts the loader, traces it once it has loaded the filter and
// returns the program. The caller must keep its reaper off meanwhile.
func dumpFilter(cfg []byte) ([]byte, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer inR.Close()
	defer inW.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer outR.Close()
	defer outW.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	// ptrace requests must come from the thread that attached.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// This very binary, even if a newer one has replaced it on disk.
	p, err := os.StartProcess("/proc/self/exe", []string{"crisp-seccomp-dump"}, &os.ProcAttr{
		Env:   []string{dumpEnv + "=1"},
		Files: []*os.File{inR, outW, null},
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		p.Kill()
		p.Wait()
	}()
	inR.Close()
	outW.Close()
	if _, err := inW.Write(cfg); err != nil {
		return nil, err
	}
	var b [512]byte
	n, _ := outR.Read(b[:])
	if n == 0 || b[0] != 'R' {
		if n > 1 && b[0] == 'E' {
			return nil, errors.New(string(b[1:n]))
		}
		return nil, errors.New("the filter's loader exited")
	}
	if err := unix.PtraceSeize(p.Pid); err != nil {
		return nil, fmt.Errorf("ptrace: %w", err)
	}
	if err := unix.PtraceInterrupt(p.Pid); err != nil {
		return nil, fmt.Errorf("ptrace interrupt: %w", err)
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(p.Pid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ws.Stopped() {
			break
		}
		if ws.Exited() || ws.Signaled() {
			return nil, errors.New("the filter's loader exited")
		}
	}
	// With no buffer the request returns the program's length.
	count, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SECCOMP_GET_FILTER, uintptr(p.Pid), 0, 0, 0, 0)
	if errno != 0 {
		return nil, fmt.Errorf("PTRACE_SECCOMP_GET_FILTER: %w", errno)
	}
	prog := make([]unix.SockFilter, count)
	if count == 0 {
		return nil, errors.New("PTRACE_SECCOMP_GET_FILTER: empty program")
	}
	got, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SECCOMP_GET_FILTER, uintptr(p.Pid), 0, uintptr(unsafe.Pointer(&prog[0])), 0, 0)
	if errno != 0 {
		return nil, fmt.Errorf("PTRACE_SECCOMP_GET_FILTER: %w", errno)
	}
	if got != count {
		return nil, fmt.Errorf("PTRACE_SECCOMP_GET_FILTER: %d instructions, then %d", count, got)
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&prog[0])), int(count)*int(unsafe.Sizeof(prog[0]))), nil
}
