package container

import (
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/sandbox"
)

// EventType is a container lifecycle event, as the CRI's GetContainerEvents
// reports them. It is the pods' type: the CRI has one stream for both.
type EventType = sandbox.EventType

const (
	EventCreated = sandbox.EventCreated
	EventStarted = sandbox.EventStarted
	EventStopped = sandbox.EventStopped
	EventDeleted = sandbox.EventDeleted
)

// Event is one lifecycle change of a container or, when ContainerID is
// PodID, of a pod.
type Event struct {
	Type        EventType
	ContainerID string
	PodID       string
	Time        time.Time
	// Sandbox is the pod as it was, set for pod events only: after a
	// pod's deletion it is the only status left to send.
	Sandbox *sandbox.Sandbox
}

// PublishPodEvent puts a pod's lifecycle change into the containers' event
// stream (sandbox.Manager.SetEventSink): the CRI has one stream for both.
func (m *Manager) PublishPodEvent(ev sandbox.Event) {
	m.events.publish(Event{Type: ev.Type, ContainerID: ev.Sandbox.ID, PodID: ev.Sandbox.ID, Time: ev.Time, Sandbox: ev.Sandbox})
}

// eventBuffer is each subscriber's backlog. kubelet's evented PLEG reads
// continuously; a subscriber that falls this far behind loses its oldest
// events (it relists periodically anyway) rather than stall the runtime.
const eventBuffer = 1024

// broadcaster fans events out to subscribers without ever blocking the
// publisher.
type broadcaster struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

func newBroadcaster() *broadcaster { return &broadcaster{subs: map[*Subscription]struct{}{}} }

// Subscription receives events until Close.
type Subscription struct {
	b       *broadcaster
	ch      chan Event
	dropped int
}

// C delivers the events.
func (s *Subscription) C() <-chan Event { return s.ch }

// Close unsubscribes. C is not closed: a publisher may hold it.
func (s *Subscription) Close() {
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.b.mu.Unlock()
}

// Subscribe starts delivering events published from now on.
func (m *Manager) Subscribe() *Subscription {
	s := &Subscription{b: m.events, ch: make(chan Event, eventBuffer)}
	m.events.mu.Lock()
	m.events.subs[s] = struct{}{}
	m.events.mu.Unlock()
	return s
}

func (b *broadcaster) publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		for {
			select {
			case s.ch <- ev:
			default:
				// Full: drop the oldest to make room. b.mu keeps other
				// publishers out, so the retry succeeds unless the
				// reader raced us, which is fine too.
				select {
				case <-s.ch:
					s.dropped++
					if s.dropped == 1 || s.dropped%100 == 0 {
						klog.InfoS("Container event subscriber is too slow; events dropped", "dropped", s.dropped)
					}
				default:
				}
				continue
			}
			break
		}
	}
}
