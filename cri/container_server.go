package cri

import (
	"context"
	"time"

	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/image"
	"github.com/crisp-runtime/crisp/sandbox"
)

// Containers is what the CRI container RPCs need from the container manager.
type Containers interface {
	Create(ctx context.Context, podID string, cfg *container.Config) (string, error)
	Start(ctx context.Context, id string) error
	Stop(ctx context.Context, id string, timeout time.Duration) error
	Remove(ctx context.Context, id string) error
	Get(id string) (*container.Snapshot, error)
	List(f container.Filter) []*container.Snapshot
	ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*container.ExecResult, error)
	UpdateResources(ctx context.Context, id string, r *container.Resources) error
	ReopenLog(ctx context.Context, id string) error
	Subscribe() *container.Subscription
	Stats(id string) (*container.Snapshot, *container.Stats, error)
	ListStats(f container.Filter) ([]*container.Snapshot, []*container.Stats)
	PodStats(podID string, podNetwork bool) *container.PodStats
	SampledPodStats(podID string, podNetwork bool) *container.PodStats
	PodMetrics(pod *sandbox.Sandbox) *container.PodMetrics
	// WritableLayersUsage is what ImageFsInfo adds for the containers.
	WritableLayersUsage() image.FilesystemUsage
	Features() container.Features
	// Quarantined describes container records start-up could not read.
	Quarantined() []string
}

// errNoContainers answers container RPCs of a Server built without a
// container manager (tests of other parts).
var errNoContainers = errdefs.ErrUnimplemented

func (s *Server) containerManager() (Containers, error) {
	if s.containers == nil {
		return nil, errNoContainers
	}
	return s.containers, nil
}
