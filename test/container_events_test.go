//go:build integration

package test

import (
	"context"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/test/harness"
)

// TestPodEvents: pods' lifecycle changes are in the container event stream
// with the pod's id as the container id, as containerd sends them. kubelet's
// evented PLEG needs the pod's status in each, also in the DELETED event,
// which is how it learns to drop the pod from its cache.
func TestPodEvents(t *testing.T) {
	d := harness.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := d.Runtime.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the subscription is made server-side
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
		ev, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
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
	recvd := make(chan *runtimeapi.ContainerEventResponse, 1)
	go func() {
		if ev, err := stream.Recv(); err == nil {
			recvd <- ev
		}
	}()
	select {
	case ev := <-recvd:
		t.Errorf("unexpected event after the pod's deletion: %v %s", ev.ContainerEventType, ev.ContainerId)
	case <-time.After(500 * time.Millisecond):
	}
}
