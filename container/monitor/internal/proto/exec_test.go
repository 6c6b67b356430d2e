package proto

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// socketPair returns the two ends of a connected unix stream socket.
func socketPair(t *testing.T) (a, b *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]*net.UnixConn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "sock")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c.(*net.UnixConn)
		t.Cleanup(func() { c.Close() })
	}
	return conns[0], conns[1]
}

func inode(t *testing.T, f *os.File) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// The control frame and the request with its fds, as the daemon sends them
// back to back, are read apart: the fds arrive with the request, through
// a pipe that still works; a payload larger than the socket's buffer
// arrives whole.
func TestExecRequestWithFiles(t *testing.T) {
	daemon, mon := socketPair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	big := bytes.Repeat([]byte("e"), 600<<10)
	sent := make(chan error, 1)
	go func() {
		if err := WriteFrame(daemon, FrameControl, []byte(CmdExec)); err != nil {
			sent <- err
			return
		}
		sent <- WriteFrameFiles(daemon, FrameExecRequest, big, []*os.File{r, w})
	}()
	typ, p, err := ReadFrame(mon, nil)
	if err != nil || typ != FrameControl || string(p) != CmdExec {
		t.Fatalf("control frame: %q %q %v", typ, p, err)
	}
	typ, p, files, err := ReadFrameFiles(mon)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if typ != FrameExecRequest || !bytes.Equal(p, big) {
		t.Fatalf("request frame %q of %d bytes", typ, len(p))
	}
	if len(files) != 2 || inode(t, files[0]) != inode(t, r) || inode(t, files[1]) != inode(t, w) {
		t.Fatalf("received %d files, not the pipe's ends", len(files))
	}
	if flags, err := unix.FcntlInt(files[0].Fd(), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("received fd is not close-on-exec: %#x %v", flags, err)
	}
	if _, err := files[1].WriteString("x"); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if n, err := r.Read(b[:]); n != 1 || b[0] != 'x' {
		t.Fatalf("read through the received pipe end: %d %v", n, err)
	}
}

// A request without fds, and one with more fds than accepted: those are
// closed, not leaked into the monitor.
func TestExecRequestFileCounts(t *testing.T) {
	daemon, mon := socketPair(t)
	if err := WriteFrameFiles(daemon, FrameExecRequest, []byte("{}"), nil); err != nil {
		t.Fatal(err)
	}
	if typ, p, files, err := ReadFrameFiles(mon); err != nil || typ != FrameExecRequest || string(p) != "{}" || len(files) != 0 {
		t.Fatalf("no fds: %q %q %d %v", typ, p, len(files), err)
	}

	var many []*os.File
	for range maxFrameFiles + 1 {
		f, err := os.Open("/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		many = append(many, f)
	}
	before := openFDs(t)
	if err := WriteFrameFiles(daemon, FrameExecRequest, []byte("{}"), many); err != nil {
		t.Fatal(err)
	}
	if _, _, files, err := ReadFrameFiles(mon); err == nil || files != nil {
		t.Fatalf("too many fds accepted: %d files, %v", len(files), err)
	}
	if after := openFDs(t); after != before {
		t.Fatalf("open fds %d before, %d after a refused frame", before, after)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestExecRequestFiles(t *testing.T) {
	for _, c := range []struct {
		r    ExecRequest
		want int
	}{
		{ExecRequest{}, 0},
		{ExecRequest{Stdout: true, Stderr: true}, 2},
		{ExecRequest{Stdin: true, Stdout: true, Stderr: true}, 3},
		{ExecRequest{Tty: true, Stdin: true, Stdout: true}, 1}, // the console socket only
	} {
		if got := c.r.Files(); got != c.want {
			t.Errorf("%+v: Files() = %d, want %d", c.r, got, c.want)
		}
	}
}

// Monitors of every version answer an unknown command alike; the daemon
// falls back on that answer, and only on it.
func TestUnknownCommand(t *testing.T) {
	_, err := ParseReply(FrameReply, ReplyPayload(UnknownCommand(CmdExec), ""))
	if !IsUnknownCommand(err) {
		t.Fatalf("%v is not an unknown command", err)
	}
	// The text monitors before this version sent.
	if !IsUnknownCommand(errors.New("unknown command " + CmdExec)) {
		t.Fatal("old monitors' answer not recognised")
	}
	for _, err := range []error{nil, errors.New("exec: container is not running"), errors.New(strings.ToUpper("unknown command x"))} {
		if IsUnknownCommand(err) {
			t.Errorf("%v taken for an unknown command", err)
		}
	}
}

func TestForkRefused(t *testing.T) {
	_, err := ParseReply(FrameReply, ReplyPayload(ForkRefused(errors.New("fork/exec /proc/self/fd/7: resource temporarily unavailable")), ""))
	if !IsForkRefused(err) || IsUnknownCommand(err) {
		t.Fatalf("%v: fork refused %v, unknown command %v", err, IsForkRefused(err), IsUnknownCommand(err))
	}
	if IsForkRefused(errors.New("exec: \"nosuch\": executable file not found in $PATH")) || IsForkRefused(nil) {
		t.Fatal("another error taken for a refused fork")
	}
}
