package hook

import (
	"sync"
	"testing"
)

type greeter interface{ Greet() string }

type en struct{}

func (en) Greet() string { return "hello" }

func TestSlotInterface(t *testing.T) {
	var s Slot[greeter]
	if s.Get() != nil {
		t.Fatal("zero Slot holds something")
	}
	s.Set(en{})
	if g := s.Get(); g == nil || g.Greet() != "hello" {
		t.Fatalf("Get = %v", g)
	}
	s.Set(nil)
	if s.Get() != nil {
		t.Fatal("Set(nil) did not uninstall")
	}
}

func TestSlotFunc(t *testing.T) {
	var s Slot[func(int) int]
	if s.Get() != nil {
		t.Fatal("zero Slot holds a func")
	}
	s.Set(func(i int) int { return i + 1 })
	if f := s.Get(); f == nil || f(1) != 2 {
		t.Fatal("installed func not returned")
	}
	s.Set(nil)
	if s.Get() != nil {
		t.Fatal("Set(nil) did not uninstall")
	}
}

// TestSlotConcurrent is for -race: installs race with calls.
func TestSlotConcurrent(t *testing.T) {
	var s Slot[greeter]
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 1000 {
				if i%2 == 0 {
					s.Set(en{})
				} else {
					s.Set(nil)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 1000 {
				if g := s.Get(); g != nil && g.Greet() != "hello" {
					t.Error("torn value")
				}
			}
		}()
	}
	wg.Wait()
}
