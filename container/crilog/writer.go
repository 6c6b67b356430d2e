// Package crilog writes container output in the CRI log format that the
// kubelet reads back (`kubectl logs`):
//
//	<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>\n
//
// The line splitting follows containerd's internal/cri/io/logger.go so that
// logs look the same whichever runtime produced them.
package crilog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// StreamType names the stream a log line came from.
type StreamType string

const (
	Stdout StreamType = "stdout"
	Stderr StreamType = "stderr"
)

// Tags of a CRI log line: F for a line that ended with a newline, P for a
// fragment (the line was longer than the maximum, or the stream ended
// without a newline).
const (
	TagFull    = "F"
	TagPartial = "P"
)

// DefaultMaxLineSize is containerd's default max_container_log_line_size.
const DefaultMaxLineSize = 16 * 1024

const timestampFormat = time.RFC3339Nano

// Writer is a CRI log file shared by the streams of one container. Each log
// line is written with a single write(2) under a mutex on an O_APPEND file,
// so lines of different streams never interleave within a line.
type Writer struct {
	mu   sync.Mutex
	root string // the path may not leave it ("" for no bound)
	path string
	f    *os.File // nil when discarding
	buf  []byte   // reused line buffer, guarded by mu

	// Write errors must not stop the container (its output would back up
	// into the pipe and block it), so they are counted and reported once.
	errCount uint64
	onError  func(error)
	now      func() time.Time
}

// Open opens (creating if needed) the CRI log file at path for appending.
// An empty path gives a Writer that discards everything. onError, if not
// nil, is called for the first write error only.
func Open(path string, onError func(error)) (*Writer, error) {
	return OpenBeneath("", path, onError)
}

// OpenBeneath is Open for a path inside root (the pod's log directory),
// which the path may not leave, through symlinks either: the directories
// under root can be writable by a container. root "" is no such bound.
func OpenBeneath(root, path string, onError func(error)) (*Writer, error) {
	w := &Writer{root: root, path: path, onError: onError, now: time.Now}
	if path == "" {
		return w, nil
	}
	f, err := openLog(root, path)
	if err != nil {
		return nil, err
	}
	w.f = f
	return w, nil
}

// logFlags open or create a log for appending. A container may plant a
// symlink at the path (crisp would write through it as root): not
// followed; or a fifo: not blocked on, and refused after the open as
// anything but a regular file is.
const logFlags = unix.O_WRONLY | unix.O_APPEND | unix.O_CREAT | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC

// openLog opens or creates a regular file at path, beneath root if set.
func openLog(root, path string) (*os.File, error) {
	fd, err := openLogFD(root, path)
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, fmt.Errorf("log file %s is a symlink; refusing to follow it", path)
	case errors.Is(err, unix.EXDEV):
		return nil, fmt.Errorf("log file %s leads out of the pod's log directory %s through a symlink; refusing it", path, root)
	case err != nil:
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("log file %s is not a regular file (%v)", path, fi.Mode().Type())
		}
		return nil, err
	}
	return f, nil
}

func openLogFD(root, path string) (int, error) {
	if root == "" {
		return unix.Open(path, logFlags, 0o640)
	}
	rel, err := filepath.Rel(root, path)
	if err != nil || !filepath.IsLocal(rel) {
		return -1, fmt.Errorf("not inside the pod's log directory %s", root)
	}
	dfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(dfd)
	return unix.Openat2(dfd, rel, &unix.OpenHow{
		Flags:   logFlags,
		Mode:    0o640,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// Path returns the log file path ("" when discarding).
func (w *Writer) Path() string { return w.path }

// Reopen opens the log path again. The kubelet rotates logs by renaming the
// file and then asking the runtime to reopen it; lines written after Reopen
// land in the new file. On error the old file stays in use.
func (w *Writer) Reopen() error {
	if w.path == "" {
		return nil
	}
	f, err := openLog(w.root, w.path)
	if err != nil {
		return fmt.Errorf("reopen log %s: %w", w.path, err)
	}
	w.mu.Lock()
	old := w.f
	w.f = f
	w.mu.Unlock()
	if old != nil {
		return old.Close()
	}
	return nil
}

// Close closes the log file. Lines written afterwards are discarded.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	// Keep the path so that a late Reopen is still meaningful to callers,
	// but stop writing.
	return err
}

// Errors returns how many log lines could not be written.
func (w *Writer) Errors() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errCount
}

// writeLine writes one CRI log line made of the concatenation of parts.
func (w *Writer) writeLine(stream StreamType, tag string, parts ...[]byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return
	}
	b := w.now().AppendFormat(w.buf[:0], timestampFormat)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ')
	b = append(b, tag...)
	b = append(b, ' ')
	for _, p := range parts {
		b = append(b, p...)
	}
	b = append(b, '\n')
	if _, err := w.f.Write(b); err != nil {
		w.errCount++
		if w.errCount == 1 && w.onError != nil {
			w.onError(fmt.Errorf("write %s log to %s: %w", stream, w.path, err))
		}
	}
	// Do not keep a huge buffer alive because of one long line.
	if cap(b) <= 2*DefaultMaxLineSize+128 {
		w.buf = b[:0]
	}
}
