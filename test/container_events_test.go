//go:build integration

package test

import (
	"context"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/testutil"
	"github.com/crisp-runtime/crisp/test/harness"
)

// TestPodEvents: pods' lifecycle changes are in the container event stream
// with the pod's id as the container id, as containerd sends them. kubelet's
// evented PLEG needs the pod's status in each, also in the DELETED event,
// which is how it learns to drop the pod from its cache.
func TestPodEvents(t *testing.T) {
	d := harness.Start(t)
	events := subscribeEvents(t, d)
	cfg := podConfig("events")
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	pod := runPod(t, d, cfg)
	stopPod(t, d, pod)
	stopPod(t, d, pod) // a second stop changes nothing and reports nothing
	removePod(t, d, pod)

	want := []struct {
		typ   runtimeapi.ContainerEventType
		state runtimeapi.PodSandboxState
	}{
		{runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, runtimeapi.PodSandboxState_SANDBOX_READY},
		{runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, runtimeapi.PodSandboxState_SANDBOX_READY},
		{runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, runtimeapi.PodSandboxState_SANDBOX_NOTREADY},
		{runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, runtimeapi.PodSandboxState_SANDBOX_NOTREADY},
	}
	for i, w := range want {
		ev := nextEvent(t, events)
		ps := ev.PodSandboxStatus
		if ev.ContainerId != pod || ev.ContainerEventType != w.typ || ps.GetId() != pod || ps.GetMetadata().GetUid() != cfg.Metadata.Uid {
			t.Fatalf("event %d: %s %v pod status %q uid %q, want %v for pod %s", i, ev.ContainerId, ev.ContainerEventType, ps.GetId(), ps.GetMetadata().GetUid(), w.typ, pod)
		}
		// Statuses are read when an event is sent, so only the last two
		// are sure to show the stopped pod.
		if i >= 2 && ps.State != w.state {
			t.Errorf("event %d (%v): pod state %v, want %v", i, w.typ, ps.State, w.state)
		}
		if ev.CreatedAt == 0 {
			t.Errorf("event %d has no time", i)
		}
	}
	select {
	case ev := <-events:
		t.Errorf("unexpected event after the pod's deletion: %v %s", ev.ContainerEventType, ev.ContainerId)
	case <-time.After(500 * time.Millisecond):
	}
}

// subscribeEvents opens a container event stream and returns its events
// once the daemon is sending them: the server subscribes only after the
// client's call returns, so marker pods are run until one's event arrives;
// the markers' events are consumed.
func subscribeEvents(t *testing.T, d *harness.Daemon) <-chan *runtimeapi.ContainerEventResponse {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := d.Runtime.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan *runtimeapi.ContainerEventResponse, 64)
	go func() {
		defer close(events)
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	for attempt := 0; attempt < 20; attempt++ {
		if markerSeen(t, d, events) {
			return events
		}
	}
	t.Fatal("no event from the daemon after 20 marker pods")
	return nil
}

// markerSeen runs and removes a host-namespace pod and consumes its events:
// false if none came within a second (not subscribed yet).
func markerSeen(t *testing.T, d *harness.Daemon, events <-chan *runtimeapi.ContainerEventResponse) bool {
	t.Helper()
	cfg := podConfig("events-marker")
	cfg.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE}
	marker := runPod(t, d, cfg)
	removePod(t, d, marker)
	timeout := time.After(testutil.Scaled(time.Second))
	for seen := false; ; {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("event stream ended")
			}
			if ev.ContainerId != marker {
				continue
			}
			seen = true
			if ev.ContainerEventType == runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT {
				return true
			}
		case <-timeout:
			if seen {
				t.Fatal("the marker pod's DELETED event never came")
			}
			return false
		}
	}
}

// nextEvent is the next event, within 30 s (scaled).
func nextEvent(t *testing.T, events <-chan *runtimeapi.ContainerEventResponse) *runtimeapi.ContainerEventResponse {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("event stream ended")
		}
		return ev
	case <-time.After(testutil.Scaled(30 * time.Second)):
		t.Fatalf("no event in %v", testutil.Scaled(30*time.Second))
	}
	return nil
}
