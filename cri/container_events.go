package cri

import (
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/container"
)

var criEventTypes = map[container.EventType]runtimeapi.ContainerEventType{
	container.EventCreated: runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT,
	container.EventStarted: runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT,
	container.EventStopped: runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT,
	container.EventDeleted: runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT,
}

// GetContainerEvents streams container and pod lifecycle events until the
// client goes away; a pod's event has the pod's id as its container id, as
// containerd sends them. Each event carries the pod's status and the statuses of all its
// containers, as kubelet's evented PLEG uses them in place of a relist. The
// statuses are read when the event is sent, so a lagging client gets the
// current state with every event rather than a stale one. A client that
// falls far behind loses its oldest events (see container.Subscribe); the
// runtime never waits for it.
func (s *Server) GetContainerEvents(_ *runtimeapi.GetEventsRequest, stream grpc.ServerStreamingServer[runtimeapi.ContainerEventResponse]) error {
	cm, err := s.containerManager()
	if err != nil {
		return err
	}
	sub := cm.Subscribe()
	defer sub.Close()
	ctx := stream.Context()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		case ev := <-sub.C():
			if err := stream.Send(s.containerEvent(cm, ev)); err != nil {
				return err
			}
		}
	}
}

func (s *Server) containerEvent(cm Containers, ev container.Event) *runtimeapi.ContainerEventResponse {
	resp := &runtimeapi.ContainerEventResponse{
		ContainerId:        ev.ContainerID,
		ContainerEventType: criEventTypes[ev.Type],
		CreatedAt:          unixNano(ev.Time),
	}
	if sb, err := s.sandboxes.Get(ev.PodID); err == nil {
		resp.PodSandboxStatus = toCRIPodSandboxStatus(sb)
	} else if ev.Sandbox != nil {
		// A deleted pod: kubelet drops it from its cache on this event,
		// matching the pod by the status's id, so the last status goes.
		resp.PodSandboxStatus = toCRIPodSandboxStatus(ev.Sandbox)
	}
	resp.ContainersStatuses = podContainerStatuses(cm, ev.PodID)
	return resp
}
