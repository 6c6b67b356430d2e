// Package hook holds what a manager calls on every operation but is
// installed once at start-up, by whoever wires the managers together:
// lifecycle hooks, the container stopper, the event sink.
package hook

import "sync/atomic"

// Slot holds a T, read without locking. The zero Slot holds T's zero value.
type Slot[T any] struct {
	p atomic.Pointer[T]
}

// Set installs v; the zero value (a nil interface or func) uninstalls.
func (s *Slot[T]) Set(v T) { s.p.Store(&v) }

// Get returns what is installed, T's zero value if nothing is.
func (s *Slot[T]) Get() T {
	if p := s.p.Load(); p != nil {
		return *p
	}
	var zero T
	return zero
}
