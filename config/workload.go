package config

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/crisp-runtime/crisp/internal/rlimit"
)

// ShmPodMemoryLimit as shm_size sizes each pod's /dev/shm to its memory limit.
const ShmPodMemoryLimit = "pod-memory-limit"

// ParseSize reads a Kubernetes quantity ("2Gi", "512M", "1048576") as a
// whole, positive number of bytes. "64m" (milli, 0.064 bytes) is refused
// rather than rounded to one byte: it is usually Docker's "64m" meant as MiB.
func ParseSize(s string) (int64, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a quantity such as 64Mi or 2Gi", s)
	}
	if q.Sign() <= 0 || q.MilliValue()%1000 != 0 {
		return 0, fmt.Errorf("%q is not a positive whole number of bytes (Mi and Gi are binary units, m is milli)", s)
	}
	return q.Value(), nil
}

func (c *Config) validateWorkload() error {
	if c.ShmSize != ShmPodMemoryLimit {
		if _, err := ParseSize(c.ShmSize); err != nil {
			return fmt.Errorf("config: shm_size: %w, or %q", err, ShmPodMemoryLimit)
		}
	}
	if _, err := rlimit.Parse(c.DefaultUlimits); err != nil {
		return fmt.Errorf("config: default_ulimits: %w", err)
	}
	return nil
}
