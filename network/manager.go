// Package network wires pod sandboxes to the node's pod network through CNI
// (libcni), the way containerd and CRI-O do: one network configuration list
// picked from a configuration directory, ADD when a sandbox is created, DEL
// when it is stopped, GC at start-up for whatever a crash left behind.
//
// The libcni cache directory (Options.CacheDir) is the source of truth for
// "what did we attach": it records the exact configuration and arguments of
// every successful ADD, so DEL and GC keep working after a restart even when
// the configuration directory changed in between.
package network

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/crisp-runtime/crisp/errdefs"
)

const (
	// DefaultIfName is the interface name every pod gets for the pod network.
	DefaultIfName = "eth0"
)

// Options configure a Manager.
type Options struct {
	ConfDir  string   // e.g. /etc/cni/net.d
	BinDirs  []string // e.g. /opt/cni/bin, /usr/lib/cni
	CacheDir string   // libcni cache dir, e.g. /var/lib/crisp/cni-cache; must survive restarts
}

// PortMapping is one hostPort of a pod, handed to plugins with the
// portMappings capability (portmap).
type PortMapping struct {
	Protocol      string // tcp|udp|sctp; empty means tcp
	ContainerPort int32
	HostPort      int32
	HostIP        string
}

// DNSConfig is passed to plugins with the "dns" capability (rare, mostly on
// Windows); resolv.conf of the pod is crisp's business, not the plugin's.
type DNSConfig struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// BandwidthConfig is passed to plugins with the "bandwidth" capability
// (the bandwidth plugin). Rates are in bits per second, bursts in bits, as
// that plugin expects; zero means unlimited.
type BandwidthConfig struct {
	IngressRate  uint64 `json:"ingressRate,omitempty"`
	IngressBurst uint64 `json:"ingressBurst,omitempty"`
	EgressRate   uint64 `json:"egressRate,omitempty"`
	EgressBurst  uint64 `json:"egressBurst,omitempty"`
}

// Pod describes the sandbox to attach.
type Pod struct {
	ID, Name, Namespace, UID string
	NetNS                    string // path to the pinned netns file
	PortMappings             []PortMapping
	CgroupParent             string // passed as the "cgroupPath" capability arg
	DNS                      *DNSConfig
	Bandwidth                *BandwidthConfig
}

// Manager runs CNI operations for pods. It is safe for concurrent use.
type Manager struct {
	opts Options
	cni  *libcni.CNIConfig

	conf confState // the currently selected network configuration

	// gcMu keeps GC from racing with pod operations: GC deletes every cached
	// attachment not in its keep list, and a pod half-way through ADD is not
	// in anyone's keep list yet. Setup/Teardown take it shared, GC exclusive.
	gcMu     sync.RWMutex
	podLocks keyedMutex // serializes ADD/DEL of one pod ID
}

// New returns a Manager. A missing or empty ConfDir is not an error: the
// configuration may be installed later (e.g. by a CNI DaemonSet), and Ready
// says so meanwhile.
func New(opts Options) (*Manager, error) {
	if opts.ConfDir == "" {
		return nil, errdefs.InvalidArgument("network: ConfDir is required")
	}
	if len(opts.BinDirs) == 0 {
		return nil, errdefs.InvalidArgument("network: at least one plugin BinDir is required")
	}
	if opts.CacheDir == "" {
		// libcni would fall back to /var/lib/cni, shared with every other
		// runtime on the node; GC would then delete their attachments.
		return nil, errdefs.InvalidArgument("network: CacheDir is required")
	}
	if err := os.MkdirAll(opts.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("network: create CNI cache dir: %w", err)
	}
	m := &Manager{
		opts: opts,
		cni:  libcni.NewCNIConfigWithCacheDir(opts.BinDirs, opts.CacheDir, nil),
	}
	m.conf.dir = opts.ConfDir
	return m, nil
}

// Ready reports nil when a valid network configuration is loaded, else an
// error whose message is the reason (suitable for the NetworkReady
// condition). It re-scans the configuration directory cheaply on every call,
// so a configuration that appears or changes later is picked up without a
// restart. The error matches errdefs.ErrUnavailable.
func (m *Manager) Ready() error {
	_, err := m.current()
	return err
}

// NetworkName returns the name of the configuration list in use, or "" when
// none is loaded.
func (m *Manager) NetworkName() string {
	n, err := m.current()
	if err != nil {
		return ""
	}
	return n.list.Name
}

// Status asks the plugins (CNI STATUS verb) whether they are ready to add
// pods, when the configuration list is at CNI version 1.1.0 or later.
// Older configurations cannot answer, so Status then is the same as Ready.
func (m *Manager) Status(ctx context.Context) error {
	n, err := m.current()
	if err != nil {
		return err
	}
	if ok, _ := version.GreaterThanOrEqualTo(n.list.CNIVersion, "1.1.0"); !ok {
		return nil
	}
	if err := m.cni.GetStatusNetworkList(ctx, n.list); err != nil {
		return notReady(fmt.Sprintf("network %q (%s) not ready: %v", n.list.Name, n.file, err))
	}
	return nil
}

// notReadyError carries a human reason as its whole message while still
// matching errdefs.ErrUnavailable, so the reason can go straight into the
// CRI NetworkReady condition.
type notReadyError struct{ reason string }

func (e *notReadyError) Error() string        { return e.reason }
func (e *notReadyError) Is(target error) bool { return target == errdefs.ErrUnavailable }

func notReady(reason string) error { return &notReadyError{reason: reason} }

// keyedMutex hands out one mutex per key and forgets it when unused, so the
// map does not grow with every pod ever seen.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*refMutex
}

type refMutex struct {
	sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*refMutex)
	}
	l := k.locks[key]
	if l == nil {
		l = &refMutex{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()

	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// lockPod takes the shared GC lock and the pod's own lock, in that order.
func (m *Manager) lockPod(id string) (unlock func()) {
	m.gcMu.RLock()
	u := m.podLocks.lock(id)
	return func() {
		u()
		m.gcMu.RUnlock()
	}
}

// joinErrs is errors.Join that keeps a single error unwrapped for nicer
// messages.
func joinErrs(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}
