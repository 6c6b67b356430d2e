package sandbox

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/registrar"
)

func TestNameReservation(t *testing.T) {
	n := registrar.New("pod")
	md := Metadata{Name: "web", UID: "u1", Namespace: "default"}
	if err := n.Reserve(nameKey(md), "pod1"); err != nil {
		t.Fatal(err)
	}
	err := n.Reserve(nameKey(md), "pod2")
	if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), "pod1") {
		t.Fatalf("second reservation: %v, want AlreadyExists naming pod1", err)
	}
	// Another attempt of the same pod is a different sandbox.
	next := md
	next.Attempt = 1
	if err := n.Reserve(nameKey(next), "pod3"); err != nil {
		t.Fatalf("next attempt refused: %v", err)
	}
	// Only the holder frees a name.
	n.Release(nameKey(md), "pod2")
	if err := n.Reserve(nameKey(md), "pod4"); err == nil {
		t.Fatal("a non-holder released the name")
	}
	n.Release(nameKey(md), "pod1")
	if err := n.Reserve(nameKey(md), "pod4"); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestNameReservationIsAtomic(t *testing.T) {
	n := registrar.New("pod")
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n.Reserve("same", fmt.Sprint("pod", i)) == nil {
				mu.Lock()
				won++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d concurrent reservations of one name succeeded", won)
	}
}
