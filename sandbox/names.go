package sandbox

import (
	"fmt"
	"sync"

	"github.com/crisp-runtime/crisp/errdefs"
)

// nameKey is the identity kubelet relies on being unique between Run and
// Remove: it retries Run with the same metadata until a pod is listed.
func nameKey(m Metadata) string {
	return fmt.Sprintf("%s_%s_%s_%d", m.Name, m.Namespace, m.UID, m.Attempt)
}

// names reserves pod names atomically, so concurrent Runs of the same pod
// yield one sandbox and AlreadyExists errors, never two sandboxes.
type names struct {
	mu    sync.Mutex
	owner map[string]string // key -> pod id
}

func newNames() *names { return &names{owner: map[string]string{}} }

func (n *names) reserve(key, id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if other, ok := n.owner[key]; ok && other != id {
		return fmt.Errorf("pod sandbox %q is already reserved by pod %s; remove that pod first: %w", key, other, errdefs.ErrAlreadyExists)
	}
	n.owner[key] = id
	return nil
}

// release frees key only if id holds it, so a late rollback cannot free a
// name another pod has taken since.
func (n *names) release(key, id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.owner[key] == id {
		delete(n.owner, key)
	}
}
