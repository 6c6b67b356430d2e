package registrar

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/crisp-runtime/crisp/errdefs"
)

func TestReserveRelease(t *testing.T) {
	r := New("pod")
	if err := r.Reserve("n", "a"); err != nil {
		t.Fatal(err)
	}
	if err := r.Reserve("n", "a"); err != nil {
		t.Fatalf("the holder may reserve again: %v", err)
	}
	err := r.Reserve("n", "b")
	if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), "pod a") {
		t.Fatalf("want AlreadyExists naming the holder, got %v", err)
	}
	r.Release("n", "b") // not the holder: no effect
	if err := r.Reserve("n", "b"); err == nil {
		t.Fatal("a non-holder's release freed the name")
	}
	r.Release("n", "a")
	if err := r.Reserve("n", "b"); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentReserveHasOneWinner(t *testing.T) {
	r := New("container")
	var wg sync.WaitGroup
	wins := make(chan string, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := string(rune('A' + i))
			if r.Reserve("same", id) == nil {
				wins <- id
			}
		}()
	}
	wg.Wait()
	close(wins)
	if n := len(wins); n != 1 {
		t.Fatalf("%d winners", n)
	}
}
