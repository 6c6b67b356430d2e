package errdefs

import (
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"testing"
)

func TestHelpersKeepKindAndCause(t *testing.T) {
	err := FailedPrecondition("container %s: %w", "c1", fs.ErrNotExist)
	if !errors.Is(err, ErrFailedPrecondition) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%v: want both the kind and the cause in the chain", err)
	}
	if got, want := err.Error(), "container c1: file does not exist: failed precondition"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if err := InvalidArgument("field %q", "x"); !errors.Is(err, ErrInvalidArgument) || err.Error() != `field "x": invalid argument` {
		t.Errorf("InvalidArgument: %v", err)
	}
	if err := NotFound("pod %s", "p"); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidArgument) {
		t.Errorf("NotFound: %v", err)
	}
}

func TestNoSpaceNamesWhatAndWhere(t *testing.T) {
	dir := t.TempDir()
	cause := &fs.PathError{Op: "write", Path: dir + "/gone/.x.tmp1", Err: syscall.ENOSPC}
	err := NoSpace("container c1", cause)
	if !errors.Is(err, ErrResourceExhausted) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("%v: want ResourceExhausted with the cause", err)
	}
	mnt := mountPoint(dir)
	for _, want := range []string{"container c1", "filesystem mounted at " + mnt + " ", cause.Path} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if mnt == "" || !strings.HasPrefix(dir, mnt) {
		t.Errorf("mountPoint(%s) = %q", dir, mnt)
	}
	quota := NoSpace("x", &fs.PathError{Op: "write", Path: dir, Err: syscall.EDQUOT})
	if !errors.Is(quota, ErrResourceExhausted) {
		t.Errorf("EDQUOT: %v", quota)
	}
	other := &fs.PathError{Op: "write", Path: dir, Err: syscall.EIO}
	if got := NoSpace("x", other); got != other {
		t.Errorf("NoSpace changed an unrelated error: %v", got)
	}
	if NoSpace("x", nil) != nil {
		t.Error("NoSpace(nil) != nil")
	}
}
