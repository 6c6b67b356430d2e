// Package container runs CRI containers: it creates their root filesystems
// (overlayfs over the image's layers), generates their OCI specs and hands
// them to per-container monitors (package container/monitor), which keep
// them running independently of the daemon. It keeps the container records
// (persisted as <root>/<id>/container.json) and serves status and lists from
// memory, as kubelet polls them constantly.
//
// Like package sandbox it has its own types; package cri translates. The CRI
// ContainerConfig itself is kept as given, because spec generation, status
// (labels, annotations, mounts) and updates all need it verbatim.
package container

import (
	"encoding/json"
	"fmt"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/container/monitor"
)

// Phase is the part of a container's life that crisp records itself; once a
// container is created, its monitor is the authority on its state.
type Phase string

const (
	// PhaseCreating is persisted before any side effect of CreateContainer,
	// so that a crash half way is rolled back at start-up. Never listed.
	PhaseCreating Phase = "creating"
	// PhaseCreated means the monitor exists; State tells the rest.
	PhaseCreated Phase = "created"
)

// State is the monitor's view of a container; the cri package maps it to
// the CRI enum.
type State = monitor.State

const (
	StateCreated = monitor.StateCreated
	StateRunning = monitor.StateRunning
	StateExited  = monitor.StateExited
	StateUnknown = monitor.StateUnknown
)

// ImageInfo is what a container records about its image at creation, so
// that status never depends on the image still being in the store.
type ImageInfo struct {
	// Name is what the user asked for (user_specified_image, else the
	// image field as given, else the first tag).
	Name string `json:"name"`
	// ID is the image id ("sha256:<config digest>"), the CRI image_id.
	ID string `json:"id"`
	// Ref is the CRI image_ref: a repo digest when the image has one, as
	// containerd reports it, else the id.
	Ref string `json:"ref"`
}

// Exit is a container's end as last observed, persisted so that a record
// keeps it even if the monitor's files are lost.
type Exit struct {
	FinishedAt time.Time `json:"finishedAt"`
	ExitCode   int       `json:"exitCode"`
	Reason     string    `json:"reason"`
	Message    string    `json:"message,omitempty"`
}

// Container is a container's record: persisted as container.json and handed
// out as an immutable snapshot (callers must not modify it).
type Container struct {
	ID        string    `json:"id"`
	PodID     string    `json:"podId"`
	Name      string    `json:"name"`
	Attempt   uint32    `json:"attempt"`
	Phase     Phase     `json:"phase"`
	CreatedAt time.Time `json:"createdAt"`
	Image     ImageInfo `json:"image"`
	// LogPath is absolute; "" when the pod has no log directory.
	LogPath string `json:"logPath,omitempty"`
	// Rootfs is the overlay mountpoint; LowerDirs its layers, top first,
	// recorded so the rootfs can be re-mounted even after the image was
	// removed (the lease keeps the layers).
	Rootfs    string   `json:"rootfs"`
	LowerDirs []string `json:"lowerDirs,omitempty"`
	// IDMap is set in a pod with its own user namespace.
	IDMap *RootfsIDMap `json:"idmap,omitempty"`
	// ImageVolumes are the images mounted into the container, in the order
	// their mounts and leases are numbered.
	ImageVolumes []ImageVolume `json:"imageVolumes,omitempty"`
	// StopSignal is the image's STOPSIGNAL, resolved at create.
	StopSignal int `json:"stopSignal"`
	// Process is the spec's process: ExecSync runs commands with its user,
	// capabilities, environment and working directory.
	Process *specs.Process `json:"process,omitempty"`
	// Resources are the effective OCI resources (after updates).
	Resources *specs.LinuxResources `json:"resources,omitempty"`
	// ConfigJSON is the CRI config as given (protojson); Config() parses it.
	ConfigJSON json.RawMessage `json:"config"`
	Exit       *Exit           `json:"exit,omitempty"`

	config *runtimeapi.ContainerConfig
}

// Config is the CRI config the container was created with, resources
// updated by UpdateContainerResources. Callers must not modify it.
func (c *Container) Config() *runtimeapi.ContainerConfig { return c.config }

// setConfig records cfg in both forms.
func (c *Container) setConfig(cfg *runtimeapi.ContainerConfig) error {
	b, err := protojson.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encode container config: %w", err)
	}
	c.ConfigJSON, c.config = b, cfg
	return nil
}

// parseConfig fills config from ConfigJSON after loading.
func (c *Container) parseConfig() error {
	cfg := &runtimeapi.ContainerConfig{}
	if len(c.ConfigJSON) > 0 {
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(c.ConfigJSON, cfg); err != nil {
			return fmt.Errorf("decode container config: %w", err)
		}
	}
	c.config = cfg
	return nil
}

// clone copies what writers change; the config is replaced, never mutated.
func (c *Container) clone() *Container {
	n := *c
	if c.Exit != nil {
		e := *c.Exit
		n.Exit = &e
	}
	return &n
}

// Status is a container's state as the CRI reports it.
type Status struct {
	State      State
	Pid        int
	CreatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   int
	Reason     string
	Message    string
}

// Snapshot pairs a record with its current status.
type Snapshot struct {
	*Container
	Status Status
}

// statusOf merges the record with what the monitor knows. CreatedAt is the
// record's: the CRI creation time is when CreateContainer began.
func statusOf(c *Container, p Process) Status {
	st := Status{State: StateUnknown, CreatedAt: c.CreatedAt}
	if p == nil {
		if e := c.Exit; e != nil {
			st.State, st.FinishedAt, st.ExitCode, st.Reason, st.Message = StateExited, e.FinishedAt, e.ExitCode, e.Reason, e.Message
		}
		return st
	}
	ms := p.Status()
	st.Pid, st.StartedAt = ms.Pid, ms.StartedAt
	st.State, st.Message = ms.State, ms.Message
	if ms.State == StateExited {
		st.FinishedAt, st.ExitCode, st.Reason = ms.FinishedAt, ms.ExitCode, ms.Reason
	}
	return st
}

// cloneConfig deep-copies a CRI config so an update never changes a
// snapshot someone is reading.
func cloneConfig(cfg *runtimeapi.ContainerConfig) *runtimeapi.ContainerConfig {
	return proto.Clone(cfg).(*runtimeapi.ContainerConfig)
}
