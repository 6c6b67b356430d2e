package sandbox

import (
	"context"
	"testing"
)

// A stop that needs retries reports the pod stopped once, and the deletion
// carries the pod's last state, which kubelet matches by id.
func TestEvents(t *testing.T) {
	m := testManager(t, &fakeNetwork{failDel: 1})
	var got []Event
	m.SetEventSink(func(ev Event) { got = append(got, ev) })
	sb := pod("p1", "web", StateReady, nil)
	sb.Network = PodNetwork{IPs: []string{"10.0.0.2"}, Attached: true}
	addPod(t, m, sb)
	ctx := context.Background()
	if err := m.Stop(ctx, "p1"); err == nil {
		t.Fatal("Stop hid a failed CNI DEL")
	}
	if err := m.Stop(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Type != EventStopped || got[1].Type != EventDeleted {
		t.Fatalf("events %+v, want one stopped and one deleted", got)
	}
	for _, ev := range got {
		if ev.Sandbox.ID != "p1" || ev.Sandbox.State != StateNotReady || ev.Time.IsZero() {
			t.Errorf("event %v: pod %s state %s time %v", ev.Type, ev.Sandbox.ID, ev.Sandbox.State, ev.Time)
		}
	}
	m.SetEventSink(nil)
	addPod(t, m, pod("p2", "db", StateReady, nil))
	if err := m.Remove(ctx, "p2"); err != nil || len(got) != 2 {
		t.Fatalf("events after the sink was removed: %+v, %v", got, err)
	}
}
