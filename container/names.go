package container

import (
	"fmt"
	"sync"

	"github.com/crisp-runtime/crisp/errdefs"
)

// nameKey is what kubelet relies on being unique: it retries a
// CreateContainer with the same metadata until the container is listed, so
// a second one must fail rather than create a twin.
func nameKey(podID, name string, attempt uint32) string {
	return fmt.Sprintf("%s_%s_%d", podID, name, attempt)
}

// names reserves container names atomically.
type names struct {
	mu    sync.Mutex
	owner map[string]string // key -> container id
}

func newNames() *names { return &names{owner: map[string]string{}} }

func (n *names) reserve(key, id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if other, ok := n.owner[key]; ok && other != id {
		return fmt.Errorf("container name %q is reserved by container %s; remove it first: %w", key, other, errdefs.ErrAlreadyExists)
	}
	n.owner[key] = id
	return nil
}

// release frees key only if id holds it, so a late rollback cannot free a
// name another container has taken since.
func (n *names) release(key, id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.owner[key] == id {
		delete(n.owner, key)
	}
}
