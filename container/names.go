package container

import "fmt"

// nameKey is what kubelet relies on being unique: it retries a
// CreateContainer with the same metadata until the container is listed, so
// a second one must fail rather than create a twin.
func nameKey(podID, name string, attempt uint32) string {
	return fmt.Sprintf("%s_%s_%d", podID, name, attempt)
}
