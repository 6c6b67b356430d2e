package sandbox

import "time"

// EventType is a pod lifecycle change. The CRI reports pods' changes in the
// same GetContainerEvents stream as containers' (with the pod id as the
// container id), and kubelet's evented PLEG relies on them: it drops a pod
// from its cache only on a DELETED event whose id is the pod's.
type EventType int

const (
	EventCreated EventType = iota
	EventStarted
	EventStopped
	EventDeleted
)

// Event is one change; Sandbox is the pod as it was right after it, which is
// all there is to report once the pod is deleted.
type Event struct {
	Type    EventType
	Sandbox *Sandbox
	Time    time.Time
}

// SetEventSink installs f to receive pod events; nil removes it. f is called
// with the pod's lock held, so it must not block or call back into the
// Manager.
func (m *Manager) SetEventSink(f func(Event)) { m.events.Set(f) }

func (m *Manager) publish(t EventType, sb *Sandbox) {
	if f := m.events.Get(); f != nil {
		f(Event{Type: t, Sandbox: sb, Time: time.Now()})
	}
}
