// Package errdefs holds the error kinds that crisp's packages return so that the
// CRI layer can map them to gRPC status codes in one place (cri/errors.go),
// without the packages below it importing gRPC.
package errdefs

import (
	"errors"
	"fmt"
)

// Wrap these with fmt.Errorf("...: %w", ErrX), or use the helpers below, so
// the message stays specific.
var (
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrUnavailable        = errors.New("unavailable")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrResourceExhausted  = errors.New("resource exhausted")
	ErrUnimplemented      = errors.New("not implemented")
)

// InvalidArgument is shorthand for an error naming the offending field.
func InvalidArgument(format string, args ...any) error {
	return wrap(ErrInvalidArgument, format, args)
}

// NotFound is shorthand for an unknown object error.
func NotFound(format string, args ...any) error {
	return wrap(ErrNotFound, format, args)
}

// FailedPrecondition is shorthand for an error saying which state or host
// feature the operation needs and lacks: retrying the same request will fail
// the same way until that changes.
func FailedPrecondition(format string, args ...any) error {
	return wrap(ErrFailedPrecondition, format, args)
}

// wrap formats the message with fmt.Errorf, so a %w in format keeps the cause
// in the chain next to kind: "message: <kind>".
func wrap(kind error, format string, args []any) error {
	return fmt.Errorf("%w: %w", fmt.Errorf(format, args...), kind)
}
