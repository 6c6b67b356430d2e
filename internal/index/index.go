// Package index is the in-memory table a manager serves pods or containers
// from, and the one place for its locking rules:
//
//   - the table's lock guards membership only; lifecycle work holds the
//     entry's own lock, so a slow stop of one object delays no other;
//   - readers load an entry's value without locking; writers hold the
//     entry's lock and Commit a fresh copy, persisted before it is
//     published, so the record on disk is never behind what Get and List
//     report;
//   - an entry can be indexed hidden: present for those that must wait for
//     it (a pod stop waiting for a container being created) but not found by
//     id nor listed until Show;
//   - Delete marks the entry removed under its lock, so whoever was waiting
//     for that lock sees the object is gone instead of working on a ghost.
package index

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/ids"
)

// Entry is one object in an Index. Managers embed it in their own entry
// type, next to what only they keep (a process handle, a pod id).
type Entry[T any] struct {
	mu      sync.Mutex
	val     atomic.Pointer[T]
	visible atomic.Bool
	removed bool // guarded by mu
}

func (e *Entry[T]) entry() *Entry[T] { return e }

// Lock takes the entry's lifecycle lock.
func (e *Entry[T]) Lock() { e.mu.Lock() }

// Unlock releases the lifecycle lock.
func (e *Entry[T]) Unlock() { e.mu.Unlock() }

// LockLive takes the lifecycle lock and reports true, or reports false
// (without the lock) when the entry was deleted while the caller waited.
func (e *Entry[T]) LockLive() bool {
	e.mu.Lock()
	if e.removed {
		e.mu.Unlock()
		return false
	}
	return true
}

// Live waits for the lifecycle work in progress and reports whether the
// entry outlived it. The lock is not kept: for callers that must not
// serialise behind the next operation (a second, shorter stop).
func (e *Entry[T]) Live() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.removed
}

// Load returns the current value, nil before the first Store or Commit.
func (e *Entry[T]) Load() *T { return e.val.Load() }

// Store publishes v without persisting it: for a value just read from disk,
// or when memory must follow a change the disk refused to record.
func (e *Entry[T]) Store(v *T) { e.val.Store(v) }

// Item is a manager's entry type: one that embeds Entry[T]. The method is
// unexported so that only the index touches the visible and removed flags.
type Item[T any] interface {
	entry() *Entry[T]
}

// Config describes the objects of an Index.
type Config[T any] struct {
	// Field is the request field the id comes in, for messages:
	// "container_id".
	Field string
	// Kind and Kinds name one and several objects in messages:
	// "container", "containers".
	Kind, Kinds string
	// ID and CreatedAt order List: oldest first, then by id.
	ID        func(*T) string
	CreatedAt func(*T) time.Time
	// Save persists a value; Commit publishes it only once Save succeeded.
	Save func(*T) error
}

// Index maps ids to entries of type E, which embed Entry[T].
type Index[T any, E Item[T]] struct {
	cfg Config[T]
	mu  sync.RWMutex
	m   map[string]E
}

// New returns an empty index.
func New[T any, E Item[T]](cfg Config[T]) *Index[T, E] {
	return &Index[T, E]{cfg: cfg, m: map[string]E{}}
}

// AddHidden indexes e under id without making it visible: Select finds it,
// Lookup and List do not until Show.
func (x *Index[T, E]) AddHidden(id string, e E) {
	x.mu.Lock()
	x.m[id] = e
	x.mu.Unlock()
}

// Add indexes e under id, visible at once.
func (x *Index[T, E]) Add(id string, e E) {
	e.entry().visible.Store(true)
	x.AddHidden(id, e)
}

// Show makes a hidden entry visible. What the entry holds besides its value
// must be set before: readers that found it may use it without the lock.
func (x *Index[T, E]) Show(e E) { e.entry().visible.Store(true) }

// Delete marks e removed and drops it from the index. The caller holds e's
// lock, so those waiting for it see the removal.
func (x *Index[T, E]) Delete(id string, e E) {
	e.entry().removed = true
	x.mu.Lock()
	if cur, ok := x.m[id]; ok && cur.entry() == e.entry() {
		delete(x.m, id)
	}
	x.mu.Unlock()
}

// Commit persists v and then publishes it as e's value; the caller holds
// e's lock.
func (x *Index[T, E]) Commit(e E, v *T) error {
	if err := x.cfg.Save(v); err != nil {
		return fmt.Errorf("save %s %s: %w", x.cfg.Kind, x.cfg.ID(v), err)
	}
	e.entry().Store(v)
	return nil
}

// Lookup finds a visible entry by id or unique id prefix, as crictl users
// type them: InvalidArgument for an empty or ambiguous id, else NotFound.
func (x *Index[T, E]) Lookup(id string) (E, error) {
	var none E
	if id == "" {
		return none, errdefs.InvalidArgument("%s is required", x.cfg.Field)
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	if e, ok := x.m[id]; ok && e.entry().visible.Load() {
		return e, nil
	}
	full, ok, ambiguous := ids.Resolve(x.visibleIDs, id)
	if ambiguous {
		return none, errdefs.InvalidArgument("%s id prefix %q matches several %s", x.cfg.Kind, id, x.cfg.Kinds)
	}
	if !ok {
		return none, errdefs.NotFound("%s %q", x.cfg.Kind, id)
	}
	return x.m[full], nil
}

// LockLive is Lookup with the entry's lock held on success (the caller
// unlocks it); an entry deleted while the caller waited is NotFound.
func (x *Index[T, E]) LockLive(id string) (E, error) {
	e, err := x.Lookup(id)
	if err != nil {
		return e, err
	}
	if !e.entry().LockLive() {
		var none E
		return none, errdefs.NotFound("%s %q", x.cfg.Kind, id)
	}
	return e, nil
}

// Get returns the entry indexed under exactly id, hidden ones included.
func (x *Index[T, E]) Get(id string) (E, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.m[id]
	return e, ok
}

// Len is the number of indexed entries, hidden ones included.
func (x *Index[T, E]) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.m)
}

// List returns the visible entries, oldest first; with a non-empty prefix
// only the one it resolves to, or none when it resolves to none or several.
func (x *Index[T, E]) List(prefix string) []E { return x.ListFunc(prefix, nil) }

// ListFunc is List of the entries keep accepts (nil: all). It filters
// before sorting, so that listing one pod's entries of a full node is cheap.
func (x *Index[T, E]) ListFunc(prefix string, keep func(E) bool) []E {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if prefix != "" {
		id, ok, _ := ids.Resolve(x.visibleIDs, prefix)
		if !ok || keep != nil && !keep(x.m[id]) {
			return nil
		}
		return []E{x.m[id]}
	}
	var out []E
	for _, e := range x.m {
		if e.entry().visible.Load() && (keep == nil || keep(e)) {
			out = append(out, e)
		}
	}
	// Kubelet needs no order, but people reading crictl output and chunked
	// streams need a stable one.
	slices.SortFunc(out, func(a, b E) int {
		va, vb := a.entry().Load(), b.entry().Load()
		if c := x.cfg.CreatedAt(va).Compare(x.cfg.CreatedAt(vb)); c != 0 {
			return c
		}
		return cmp.Compare(x.cfg.ID(va), x.cfg.ID(vb))
	})
	return out
}

// Select returns every indexed entry keep selects, hidden ones included:
// for work that must wait for objects still being created.
func (x *Index[T, E]) Select(keep func(E) bool) []E {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []E
	for _, e := range x.m {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// visibleIDs iterates the ids Lookup and List may resolve; callers hold mu.
func (x *Index[T, E]) visibleIDs(yield func(string) bool) {
	for id, e := range x.m {
		if e.entry().visible.Load() && !yield(id) {
			return
		}
	}
}

// MatchLabels reports whether labels has every pair of selector, the CRI's
// label selector for List.
func MatchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
