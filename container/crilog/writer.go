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
	"sync"
	"syscall"
	"time"
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
	w := &Writer{path: path, onError: onError, now: time.Now}
	if path == "" {
		return w, nil
	}
	f, err := openLog(path)
	if err != nil {
		return nil, err
	}
	w.f = f
	return w, nil
}

// openLog opens or creates a regular file at path. The directory may be
// writable by a container (a hostPath of the pod's log directory), so a
// symlink planted there is not followed (crisp would write through it
// as root) and a fifo or device is refused, not blocked on.
func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o640)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("log file %s is a symlink; refusing to follow it", path)
		}
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("log file %s is not a regular file (%v)", path, fi.Mode().Type())
		}
		return nil, err
	}
	return f, nil
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
	f, err := openLog(w.path)
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
