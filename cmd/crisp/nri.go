package main

import (
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/config"
	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/container/cdi"
	"github.com/crisp-runtime/crisp/nri"
	"github.com/crisp-runtime/crisp/sandbox"
)

// startNRI lets NRI plugins in when the configuration asks for it. The
// hooks are installed before pre-installed plugins start, so none of them
// misses an event; it returns what stops them again.
func startNRI(cfg *config.Config, pods *sandbox.Manager, containers *container.Manager, devices *cdi.Registry) (stop func(), err error) {
	if !cfg.NRI.Enable {
		return func() {}, nil
	}
	n, err := nri.New(nri.Options{
		RuntimeName:         "crisp",
		RuntimeVersion:      version,
		SocketPath:          cfg.NRI.SocketPath,
		PluginPath:          cfg.NRI.PluginPath,
		PluginConfigPath:    cfg.NRI.PluginConfigPath,
		RegistrationTimeout: cfg.NRI.PluginRegistrationTimeout,
		RequestTimeout:      cfg.NRI.PluginRequestTimeout,
		Pods:                pods,
		Containers:          containers,
		CDI:                 devices,
	})
	if err != nil {
		return nil, err
	}
	pods.SetHooks(n)
	containers.SetHooks(n)
	if err := n.Start(); err != nil {
		pods.SetHooks(nil)
		containers.SetHooks(nil)
		return nil, err
	}
	klog.InfoS("NRI plugins connect here", "socket", cfg.NRI.SocketPath)
	return func() {
		pods.SetHooks(nil)
		containers.SetHooks(nil)
		n.Stop()
	}, nil
}
