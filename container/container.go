// Package container runs CRI containers: it creates their root filesystems
// (overlayfs over the image's layers), generates their OCI specs and hands
// them to per-container monitors (package container/monitor), which keep
// them running independently of the daemon. It keeps the container records
// (persisted as <root>/<id>/container.json) and serves status and lists from
// memory, as kubelet polls them constantly.
//
// Like package sandbox it has its own types, and no CRI types: package cri
// translates a request into a Config once, and its answers from Container.
package container

import (
	"encoding/json"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/container/monitor"
	"github.com/crisp-runtime/crisp/container/spec"
)

// Config is what a container is created from. It is defined in package spec,
// which turns it into the OCI spec (and which this package imports).
type Config = spec.Config

// Resources are a container's requested cgroup limits, as created or as
// UpdateResources last replaced them.
type Resources = spec.Resources

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
	// Rootfs is the root's mountpoint; LowerDirs an overlay's layers, top
	// first, recorded so the rootfs can be re-mounted even after the image
	// was removed (the lease keeps the layers).
	Rootfs    string   `json:"rootfs"`
	LowerDirs []string `json:"lowerDirs,omitempty"`
	// RootfsKind is RootfsNative for a native root (a copy of the image,
	// bind-mounted at Rootfs; no LowerDirs), "" for an overlay. A crisp
	// without native roots reads such a record as an overlay without
	// layers, whose mount fails: such a container must be removed first.
	RootfsKind string `json:"rootfsKind,omitempty"`
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
	// Config is the one the container was created with, its Resources
	// replaced by UpdateResources. Its slices and maps are shared between
	// snapshots and never modified.
	Config Config `json:"containerConfig"`
	// CRIConfig is how schema version 1 recorded the config: the CRI
	// message as protojson. Loading converts it into Config (see
	// Options.DecodeCRIConfig) and clears it, so it is never written again.
	CRIConfig json.RawMessage `json:"config,omitempty"`
	Exit      *Exit           `json:"exit,omitempty"`
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
