// Package nri runs crisp's adaptation of the Node Resource Interface
// (github.com/containerd/nri), the plugin protocol containerd and CRI-O
// share: plugins connect to a unix socket (or are started from a plugin
// directory), see every pod and container lifecycle event, may adjust a
// container's OCI spec before it is created and may update or evict
// containers.
//
// The sandbox and container packages do not know NRI: *NRI implements
// their Hooks, and reaches back into them through the Pods and Containers
// interfaces below.
package nri

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	nrilog "github.com/containerd/nri/pkg/log"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/container/cdi"
	"github.com/crisp-runtime/crisp/sandbox"
)

// Pods is what the adaptation needs from the sandbox manager.
type Pods interface {
	List(sandbox.Filter) []*sandbox.Sandbox
}

// Containers is what the adaptation needs from the container manager.
type Containers interface {
	List(container.Filter) []*container.Snapshot
	Get(id string) (*container.Snapshot, error)
	// ApplyResources updates a container without telling the hooks: the
	// update comes from a plugin.
	ApplyResources(ctx context.Context, id string, r *container.Resources) error
	Stop(ctx context.Context, id string, timeout time.Duration) error
}

// Options configure the adaptation.
type Options struct {
	// RuntimeName and RuntimeVersion are what plugins are told they run under.
	RuntimeName, RuntimeVersion string
	// SocketPath is where external plugins connect.
	SocketPath string
	// PluginPath holds plugins crisp starts itself ("NN-name" executables);
	// PluginConfigPath their configuration files.
	PluginPath, PluginConfigPath string
	// RegistrationTimeout bounds a plugin's registration and its first
	// Synchronize, RequestTimeout each event a plugin handles.
	RegistrationTimeout, RequestTimeout time.Duration
	Pods                                Pods
	Containers                          Containers
	// CDI injects the CDI devices plugins add; nil refuses them (CDI
	// disabled).
	CDI *cdi.Registry
}

// NRI relays pod and container lifecycle events to plugins.
type NRI struct {
	nri        *adaptation.Adaptation
	pods       Pods
	containers Containers
	cdi        *cdi.Registry

	// mu serializes events, so that plugins see them in the order the
	// runtime made them, and guards state. It is never held while calling
	// into the managers for anything that takes a pod's or container's
	// lock: the hooks are called with those held.
	mu sync.Mutex
	// state is what plugins were told about each pod and container; it
	// turns repeated stops into one event and orders stop before remove.
	state map[string]state
	// wg tracks the side effects of events still being applied.
	wg sync.WaitGroup
	// requestTimeout bounds an event; syncTimeout a joining plugin's
	// first Synchronize (see synchronize).
	requestTimeout, syncTimeout time.Duration
}

type state int

const (
	gone state = iota // never told, or removed
	created
	running
	stopped
)

// New prepares the adaptation; Start lets plugins in.
func New(opts Options) (*NRI, error) {
	if opts.Pods == nil || opts.Containers == nil {
		return nil, fmt.Errorf("nri: pods and containers are required")
	}
	// The library's logger is process-wide, and read without a lock by
	// goroutines of earlier adaptations (tests run several).
	setLogger.Do(func() { nrilog.Set(klogger{}) })
	// The library keeps these process-wide.
	adaptation.SetPluginRegistrationTimeout(opts.RegistrationTimeout)
	adaptation.SetPluginRequestTimeout(opts.RequestTimeout)
	n := &NRI{pods: opts.Pods, containers: opts.Containers, cdi: opts.CDI, state: map[string]state{},
		requestTimeout: opts.RequestTimeout, syncTimeout: opts.RegistrationTimeout}
	a, err := adaptation.New(opts.RuntimeName, opts.RuntimeVersion, n.synchronize, n.updateFromPlugin,
		adaptation.WithSocketPath(opts.SocketPath),
		adaptation.WithPluginPath(opts.PluginPath),
		adaptation.WithPluginConfigPath(opts.PluginConfigPath),
	)
	if err != nil {
		return nil, fmt.Errorf("nri: %w", err)
	}
	n.nri = a
	return n, nil
}

// Start starts the pre-installed plugins and listens for others.
func (n *NRI) Start() error {
	if err := n.nri.Start(); err != nil {
		return fmt.Errorf("nri: %w", err)
	}
	return nil
}

// Stop disconnects every plugin and stops those crisp started, once the
// updates and evictions they asked for are done.
func (n *NRI) Stop() {
	n.nri.Stop()
	n.wg.Wait()
}

// BlockSync implements the sandbox and container Hooks.
func (n *NRI) BlockSync() func() {
	b := n.nri.BlockPluginSync()
	return b.Unblock
}

func (n *NRI) setState(id string, s state) {
	if s == gone {
		delete(n.state, id)
		return
	}
	n.state[id] = s
}

func (n *NRI) needsStop(id string) bool {
	s := n.state[id]
	return s == created || s == running
}

func (n *NRI) needsRemove(id string) bool { return n.state[id] != gone }

var setLogger sync.Once

// klogger sends the library's log to klog; its informational chatter
// (plugin registration, invocation order) is worth -v=2.
type klogger struct{}

func (klogger) Debugf(_ context.Context, f string, a ...any) { klog.V(4).Infof("nri: "+f, a...) }
func (klogger) Infof(_ context.Context, f string, a ...any)  { klog.V(2).Infof("nri: "+f, a...) }
func (klogger) Warnf(_ context.Context, f string, a ...any)  { klog.Warningf("nri: "+f, a...) }
func (klogger) Errorf(_ context.Context, f string, a ...any) { klog.Errorf("nri: "+f, a...) }
