package main

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/config"
	"github.com/crisp-runtime/crisp/internal/rlimit"
	"github.com/crisp-runtime/crisp/sandbox"
)

// containerRlimits is every container's explicit rlimit set: crisp's
// baseline with default_ulimits over it. A configured limit the daemon
// cannot grant stops start-up rather than failing every container later.
func containerRlimits(cfg *config.Config) (rlimit.Host, []specs.POSIXRlimit, error) {
	host, err := rlimit.DetectHost()
	if err != nil {
		return host, nil, err
	}
	limits, lowered, err := host.Defaults(cfg.DefaultUlimits)
	if err != nil {
		return host, nil, fmt.Errorf("config: default_ulimits: %w", err)
	}
	if len(lowered) > 0 {
		klog.InfoS("Some baseline container rlimits are lowered to crisp's own hard limits, which it cannot raise without CAP_SYS_RESOURCE", "rlimits", lowered)
	}
	return host, limits, nil
}

func shmOptions(cfg *config.Config) (sandbox.ShmOptions, error) {
	if cfg.ShmSize == config.ShmPodMemoryLimit {
		return sandbox.ShmOptions{PodMemoryLimit: true}, nil
	}
	n, err := config.ParseSize(cfg.ShmSize)
	if err != nil {
		return sandbox.ShmOptions{}, fmt.Errorf("config: shm_size: %w", err)
	}
	return sandbox.ShmOptions{Size: n}, nil
}
