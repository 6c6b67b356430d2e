package errdefs

import (
	"errors"
	"io/fs"
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
