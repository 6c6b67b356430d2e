// Command app is the program run inside test containers (built statically,
// copied into a minimal rootfs as /bin/app). Its first argument selects a
// behavior.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: app MODE [ARGS]")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "print": // print OUT ERR... EXIT: alternate stdout/stderr lines
		for i, a := range args[:len(args)-1] {
			w := os.Stdout
			if i%2 == 1 {
				w = os.Stderr
			}
			fmt.Fprintln(w, a)
		}
		code, _ := strconv.Atoi(args[len(args)-1])
		os.Exit(code)
	case "raw": // raw TEXT: write TEXT verbatim (\n escapes) to stdout
		os.Stdout.WriteString(strings.ReplaceAll(args[0], `\n`, "\n"))
	case "long": // long N: one line of N bytes, then a tail without newline
		n, _ := strconv.Atoi(args[0])
		os.Stdout.WriteString(strings.Repeat("L", n) + "\ntail")
	case "exit":
		code, _ := strconv.Atoi(args[0])
		os.Exit(code)
	case "delay-exit": // delay-exit MS CODE
		ms, _ := strconv.Atoi(args[0])
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Println("bye")
		code, _ := strconv.Atoi(args[1])
		os.Exit(code)
	case "sleep":
		time.Sleep(time.Hour)
	case "ticker": // a numbered line every 20ms, forever; ignores SIGTERM
		signal.Ignore(syscall.SIGTERM)
		for i := 0; ; i++ {
			fmt.Printf("tick %d\n", i)
			time.Sleep(20 * time.Millisecond)
		}
	case "stubborn": // ignore SIGTERM, and fork a child that does too
		signal.Ignore(syscall.SIGTERM)
		spawn("stubborn-child")
		fmt.Println("ready")
		time.Sleep(time.Hour)
	case "stubborn-child":
		signal.Ignore(syscall.SIGTERM)
		time.Sleep(time.Hour)
	case "tree": // fork a child, print both pids, sleep
		pid := spawn("sleep")
		fmt.Printf("%d %d\n", os.Getpid(), pid)
		time.Sleep(time.Hour)
	case "detach": // detach exit|hang: start a sleeper in a session of its own that keeps stdio, then exit or sleep
		pid, err := syscall.ForkExec("/proc/self/exe", []string{"app", "sleep"}, &syscall.ProcAttr{
			Files: []uintptr{0, 1, 2},
			Sys:   &syscall.SysProcAttr{Setsid: true},
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "spawn:", err)
			os.Exit(1)
		}
		fmt.Printf("detached %d\n", pid)
		if args[0] == "hang" {
			time.Sleep(time.Hour)
		}
	case "oom": // allocate and touch memory until killed
		var keep [][]byte
		for {
			b := make([]byte, 4<<20)
			for i := range b {
				b[i] = 1
			}
			keep = append(keep, b)
		}
	case "cat": // echo stdin lines to stdout, exit at EOF
		s := bufio.NewScanner(os.Stdin)
		for s.Scan() {
			fmt.Println("echo:", s.Text())
		}
		fmt.Println("stdin closed")
	case "self": // self: what the process was started with, one fact a line
		self()
	case "tty":
		fmt.Printf("isatty=%v\n", isatty(0) && isatty(1))
		s := bufio.NewScanner(os.Stdin)
		for s.Scan() {
			fmt.Println("echo:", s.Text())
			if s.Text() == "quit" {
				return
			}
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}

func spawn(mode string) int {
	pid, err := syscall.ForkExec("/proc/self/exe", []string{"app", mode}, &syscall.ProcAttr{
		Files: []uintptr{0, 1, 2},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "spawn:", err)
		os.Exit(1)
	}
	return pid
}

func isatty(fd int) bool {
	var t syscall.Termios
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return e == 0
}

// self prints what an exec's init set up for the process: identity,
// capabilities, seccomp, limits, namespaces, cgroups, environment, working
// directory, umask, session, descriptors and keyring.
func self() {
	// Before this program opens anything of its own.
	var fds []string
	for fd := 0; fd < 1024; fd++ {
		if _, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0); e == 0 {
			fds = append(fds, strconv.Itoa(fd))
		}
	}
	status, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(status), "\n") {
		for _, k := range []string{"Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:", "Seccomp_filters:", "SigBlk:", "SigIgn:", "THP_enabled:", "Cpus_allowed_list:"} {
			if strings.HasPrefix(l, k) {
				fmt.Println(strings.Join(strings.Fields(l), " "))
			}
		}
	}
	limits, _ := os.ReadFile("/proc/self/limits")
	fmt.Print(string(limits))
	for _, ns := range []string{"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"} {
		l, err := os.Readlink("/proc/self/ns/" + ns)
		fmt.Println("ns", ns, l, err)
	}
	cg, _ := os.ReadFile("/proc/self/cgroup")
	fmt.Print(string(cg))
	oom, _ := os.ReadFile("/proc/self/oom_score_adj")
	fmt.Print("oom_score_adj ", string(oom))
	wd, err := os.Getwd()
	fmt.Println("cwd", wd, err)
	env := os.Environ()
	fmt.Println("env", strings.Join(env, " "))
	m := syscall.Umask(0)
	fmt.Printf("umask %o\n", m)
	sid, _, _ := syscall.RawSyscall(syscall.SYS_GETSID, 0, 0, 0)
	fmt.Println("session leader", int(sid) == os.Getpid(), "ppid", os.Getppid())
	fmt.Println("fds", strings.Join(fds, " "))
	keys, _ := os.ReadFile("/proc/keys")
	fmt.Println("session keyring", strings.Contains(string(keys), "_ses."))
	// The profile denies kexec_load; a number past every syscall gets
	// ENOSYS from the kernel or the filter's stub.
	_, _, e := syscall.RawSyscall(syscall.SYS_KEXEC_LOAD, 0, 0, 0)
	fmt.Println("kexec_load", e)
	_, _, e = syscall.RawSyscall(1000, 0, 0, 0)
	fmt.Println("syscall 1000", e)
	d, _, _ := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_GET_DUMPABLE, 0, 0)
	fmt.Println("dumpable", d)
}
