package libct

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// NewConsoleSocketPair returns the two ends of the socket libcontainer uses
// to hand over a pty master: child goes into Process.ConsoleSocket, the
// master arrives on parent (see RecvConsole).
func NewConsoleSocketPair() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("console socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[1]), "console-parent"), os.NewFile(uintptr(fds[0]), "console-child"), nil
}

// RecvConsole receives the pty master that libcontainer's init sends over
// the console socket (an SCM_RIGHTS message whose data is the file name).
func RecvConsole(sock *os.File) (*os.File, error) {
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	conn, err := sock.SyscallConn()
	if err != nil {
		return nil, err
	}
	var (
		n, oobn int
		rerr    error
	)
	err = conn.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), name, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, fmt.Errorf("receive console: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("receive console: %w", err)
	}
	if len(msgs) != 1 {
		return nil, errors.New("receive console: no file descriptor")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, errors.New("receive console: expected exactly one file descriptor")
	}
	// Non-blocking so that reads go through the runtime poller and can be
	// interrupted with deadlines.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, err
	}
	return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
}

// SetWinsize sets the size, in characters, of the terminal f.
func SetWinsize(f *os.File, width, height uint16) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	err = conn.Control(func(fd uintptr) {
		ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: height, Col: width})
	})
	if err != nil {
		return err
	}
	return ioErr
}
