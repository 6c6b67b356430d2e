//go:build !cgo

package podinit

import "errors"

// execReaper needs the C reaper, which a binary built without cgo lacks.
func execReaper() error { return errors.New("built without cgo") }
