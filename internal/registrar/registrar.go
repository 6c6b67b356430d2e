// Package registrar reserves the names kubelet relies on being unique (a
// pod's name+uid+namespace+attempt, a container's pod+name+attempt): kubelet
// retries a create with the same metadata until the object is listed, so a
// second create must fail rather than make a twin.
package registrar

import (
	"fmt"
	"sync"

	"github.com/crisp-runtime/crisp/errdefs"
)

// Registrar maps names to the id holding them.
type Registrar struct {
	kind  string
	mu    sync.Mutex
	owner map[string]string
}

// New returns an empty registrar; kind names the objects in messages.
func New(kind string) *Registrar {
	return &Registrar{kind: kind, owner: map[string]string{}}
}

// Reserve gives name to id, or fails with AlreadyExists naming the holder.
func (r *Registrar) Reserve(name, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if other, ok := r.owner[name]; ok && other != id {
		return fmt.Errorf("%s name %q is reserved by %s %s; remove that %s first: %w", r.kind, name, r.kind, other, r.kind, errdefs.ErrAlreadyExists)
	}
	r.owner[name] = id
	return nil
}

// Release frees name only if id holds it, so a late rollback cannot free a
// name another object has taken since.
func (r *Registrar) Release(name, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.owner[name] == id {
		delete(r.owner, name)
	}
}

// Len is the number of reserved names, for leak checks.
func (r *Registrar) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.owner)
}
