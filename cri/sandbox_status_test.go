package cri

import (
	"context"
	"slices"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/sandbox"
)

// listedContainers lists snapshots as the container manager does: oldest
// first.
type listedContainers struct {
	Containers
	snaps []*container.Snapshot
}

func (l listedContainers) List(container.Filter) []*container.Snapshot { return l.snaps }

// TestPodSandboxStatusNewestContainerFirst: kubelet's evented PLEG reads a
// container's latest attempt as the first status with its name.
func TestPodSandboxStatusNewestContainerFirst(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	snap := func(id string, attempt uint32, state container.State, age time.Duration) *container.Snapshot {
		return &container.Snapshot{
			Container: &container.Container{ID: id, PodID: "p", Name: "web", Attempt: attempt},
			Status:    container.Status{State: state, CreatedAt: t0.Add(-age)},
		}
	}
	cm := listedContainers{snaps: []*container.Snapshot{
		snap("attempt4", 4, container.StateExited, 2*time.Minute),
		snap("sidecar", 0, container.StateRunning, time.Minute),
		snap("attempt5", 5, container.StateRunning, time.Second),
	}}
	s := New(Deps{
		Sandboxes:  fakeSandboxes{pods: map[string]*sandbox.Sandbox{"p": {ID: "p", State: sandbox.StateReady}}},
		Containers: cm,
	})
	resp, err := s.PodSandboxStatus(context.Background(), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: "p"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range resp.ContainersStatuses {
		got = append(got, c.Id)
	}
	if want := []string{"attempt5", "sidecar", "attempt4"}; !slices.Equal(got, want) {
		t.Errorf("container statuses %v, want newest first %v", got, want)
	}
	ev := s.containerEvent(cm, container.Event{Type: container.EventStarted, ContainerID: "attempt5", PodID: "p"})
	if len(ev.ContainersStatuses) != 3 || ev.ContainersStatuses[0].Id != "attempt5" {
		t.Errorf("event's container statuses %v, want attempt5 first", ev.ContainersStatuses)
	}
}
