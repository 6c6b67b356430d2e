package sandbox

import "fmt"

// nameKey is the identity kubelet relies on being unique between Run and
// Remove: it retries Run with the same metadata until a pod is listed.
func nameKey(m Metadata) string {
	return fmt.Sprintf("%s_%s_%s_%d", m.Name, m.Namespace, m.UID, m.Attempt)
}
