package index

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crisp-runtime/crisp/errdefs"
)

type obj struct {
	ID      string
	Created time.Time
	Gen     int
}

// item is what a manager's entry looks like: the index's part embedded,
// the manager's own next to it.
type item struct {
	Entry[obj]
	extra string
}

type saver struct {
	mu    sync.Mutex
	saved map[string]obj
	fail  error
}

func (s *saver) save(o *obj) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.saved[o.ID] = *o
	return nil
}

func newIndex() (*Index[obj, *item], *saver) {
	s := &saver{saved: map[string]obj{}}
	return New[obj, *item](Config[obj]{
		Field: "thing_id", Kind: "thing", Kinds: "things",
		ID:        func(o *obj) string { return o.ID },
		CreatedAt: func(o *obj) time.Time { return o.Created },
		Save:      s.save,
	}), s
}

var t0 = time.Unix(1000, 0)

// add indexes a visible item whose value was read from disk.
func add(x *Index[obj, *item], id string, created time.Time) *item {
	it := &item{extra: id}
	it.Store(&obj{ID: id, Created: created})
	x.Add(id, it)
	return it
}

func TestLookup(t *testing.T) {
	x, _ := newIndex()
	abc := add(x, "abc1", t0)
	add(x, "abd2", t0)
	add(x, "ab", t0)
	hidden := &item{}
	x.AddHidden("zzz9", hidden)

	for _, tc := range []struct {
		id   string
		want *item
		err  error
		msg  string
	}{
		{id: "abc1", want: abc},
		{id: "abc", want: abc},
		{id: "ab", want: x.m["ab"]}, // an exact id wins over prefixes
		{id: "a", err: errdefs.ErrInvalidArgument, msg: `thing id prefix "a" matches several things`},
		{id: "", err: errdefs.ErrInvalidArgument, msg: "thing_id is required"},
		{id: "nope", err: errdefs.ErrNotFound, msg: `thing "nope"`},
		{id: "zzz9", err: errdefs.ErrNotFound}, // hidden: neither by id
		{id: "zz", err: errdefs.ErrNotFound},   // nor by prefix
	} {
		got, err := x.Lookup(tc.id)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("Lookup(%q) = %v, %v; want %v, %v", tc.id, got, err, tc.want, tc.err)
		}
		if tc.msg != "" && (err == nil || !strings.Contains(err.Error(), tc.msg)) {
			t.Errorf("Lookup(%q) error %v, want it to say %q", tc.id, err, tc.msg)
		}
	}

	x.Show(hidden)
	if got, err := x.Lookup("zz"); err != nil || got != hidden {
		t.Fatalf("after Show: %v %v", got, err)
	}
	if e, ok := x.Get("zzz9"); !ok || e != hidden || x.Len() != 4 {
		t.Fatalf("Get %v %v, Len %d", e, ok, x.Len())
	}
}

func TestHiddenEntriesAreSelectedButNotListed(t *testing.T) {
	x, _ := newIndex()
	add(x, "a", t0)
	h := &item{extra: "pod1"}
	x.AddHidden("h", h)
	if l := x.List(""); len(l) != 1 || l[0].extra != "a" {
		t.Fatalf("List = %v", l)
	}
	if l := x.List("h"); l != nil {
		t.Fatalf("List(h) = %v", l)
	}
	if e, ok := x.Get("h"); !ok || e != h {
		t.Fatal("Get misses a hidden entry")
	}
	sel := x.Select(func(e *item) bool { return e.extra == "pod1" })
	if len(sel) != 1 || sel[0] != h {
		t.Fatalf("Select = %v", sel)
	}
}

func TestListOrderAndPrefix(t *testing.T) {
	x, _ := newIndex()
	add(x, "c", t0)
	add(x, "b", t0.Add(-time.Second))
	add(x, "a", t0) // same time as c: ordered by id
	add(x, "d", t0.Add(time.Second))
	var got []string
	for _, e := range x.List("") {
		got = append(got, e.Load().ID)
	}
	if strings.Join(got, "") != "bacd" {
		t.Fatalf("order %v, want b a c d", got)
	}
	add(x, "dd", t0)
	if l := x.List("c"); len(l) != 1 || l[0].Load().ID != "c" {
		t.Fatalf("List(c) = %v", l)
	}
	if l := x.List("d"); len(l) != 1 || l[0].Load().ID != "d" {
		t.Fatalf("List(d): an exact id must win, got %v", l)
	}
	if l := x.List("x"); l != nil {
		t.Fatalf("List(x) = %v", l)
	}
	add(x, "xa", t0)
	add(x, "xb", t0)
	if l := x.List("x"); l != nil {
		t.Fatalf("ambiguous List(x) = %v", l)
	}
}

func TestListFuncFiltersInOrder(t *testing.T) {
	x, _ := newIndex()
	add(x, "c", t0)
	add(x, "b", t0.Add(-time.Second))
	add(x, "a", t0)
	add(x, "d", t0.Add(time.Second))
	hidden := &item{extra: "h"}
	hidden.Store(&obj{ID: "h", Created: t0})
	x.AddHidden("h", hidden)
	notB := func(e *item) bool { return e.extra != "b" }
	var got []string
	for _, e := range x.ListFunc("", notB) {
		got = append(got, e.Load().ID)
	}
	if strings.Join(got, "") != "acd" {
		t.Fatalf("ListFunc(not b) = %v, want a c d (no hidden h)", got)
	}
	if l := x.ListFunc("b", notB); l != nil {
		t.Fatalf("ListFunc(b, not b) = %v", l)
	}
	if l := x.ListFunc("c", notB); len(l) != 1 || l[0].Load().ID != "c" {
		t.Fatalf("ListFunc(c, not b) = %v", l)
	}
}

func TestDelete(t *testing.T) {
	x, _ := newIndex()
	old := add(x, "a", t0)
	old.Lock()
	x.Delete("a", old)
	old.Unlock()
	if _, err := x.Lookup("a"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("deleted entry found: %v", err)
	}
	if old.Live() || old.LockLive() {
		t.Fatal("a deleted entry is live")
	}
	// A stale Delete must not drop an entry that took the id since.
	cur := add(x, "a", t0)
	x.Delete("a", old)
	if e, err := x.Lookup("a"); err != nil || e != cur {
		t.Fatalf("stale delete dropped the new entry: %v %v", e, err)
	}
}

func TestLockLiveWaitsAndSeesRemoval(t *testing.T) {
	x, _ := newIndex()
	e := add(x, "a", t0)
	e.Lock() // an operation in progress

	got := make(chan error, 1)
	go func() {
		_, err := x.LockLive("a")
		got <- err
	}()
	waited := make(chan bool, 1)
	go func() { waited <- e.Live() }()

	select {
	case err := <-got:
		t.Fatalf("LockLive returned %v while the entry was locked", err)
	case <-time.After(50 * time.Millisecond):
	}
	x.Delete("a", e) // the operation removes the object
	e.Unlock()
	if err := <-got; !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("LockLive after removal: %v", err)
	}
	if <-waited {
		t.Fatal("Live after removal")
	}
}

func TestLockLiveHoldsTheLock(t *testing.T) {
	x, _ := newIndex()
	e := add(x, "a", t0)
	got, err := x.LockLive("a")
	if err != nil || got != e {
		t.Fatal(err)
	}
	if e.mu.TryLock() {
		t.Fatal("LockLive returned without the lock")
	}
	e.Unlock()
	if !e.Live() {
		t.Fatal("live entry reported gone")
	}
	if _, err := x.LockLive(""); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("empty id: %v", err)
	}
}

func TestCommitPersistsBeforePublishing(t *testing.T) {
	x, s := newIndex()
	e := add(x, "a", t0)
	s.fail = errors.New("disk full")
	if err := x.Commit(e, &obj{ID: "a", Gen: 1}); err == nil || !strings.Contains(err.Error(), "save thing a: disk full") {
		t.Fatalf("Commit = %v", err)
	}
	if e.Load().Gen != 0 {
		t.Fatal("a value the disk refused was published")
	}
	s.fail = nil
	if err := x.Commit(e, &obj{ID: "a", Gen: 2}); err != nil {
		t.Fatal(err)
	}
	if e.Load().Gen != 2 || s.saved["a"].Gen != 2 {
		t.Fatalf("memory %d, disk %d", e.Load().Gen, s.saved["a"].Gen)
	}
}

// TestConcurrentUse runs the managers' patterns at once; run it with -race.
// Every operation on an id holds the entry's lock, so the generations each
// id goes through are counted without gaps.
func TestConcurrentUse(t *testing.T) {
	x, s := newIndex()
	const ids, workers, rounds = 8, 8, 200
	for i := range ids {
		add(x, fmt.Sprintf("id%02d", i), t0.Add(time.Duration(i)))
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				id := fmt.Sprintf("id%02d", (w+r)%ids)
				switch r % 4 {
				case 0, 1: // update under the lock
					e, err := x.LockLive(id)
					if err != nil {
						continue // removed by another worker
					}
					v := *e.Load()
					v.Gen++
					if err := x.Commit(e, &v); err != nil {
						t.Error(err)
					}
					e.Unlock()
				case 2: // readers: no lock
					if e, err := x.Lookup(id); err == nil && e.Load().ID != id {
						t.Errorf("%s holds %s", id, e.Load().ID)
					}
					for _, e := range x.List("") {
						_ = e.Load().Gen
					}
					x.Select(func(e *item) bool { return e.extra == id })
				case 3: // remove and create again, hidden first
					e, err := x.LockLive(id)
					if err != nil {
						continue
					}
					x.Delete(id, e)
					e.Unlock()
					n := &item{extra: id}
					n.Lock()
					x.AddHidden(id, n)
					n.Store(&obj{ID: id, Created: t0})
					x.Show(n)
					n.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if x.Len() != ids || len(x.List("")) != ids {
		t.Fatalf("%d entries, %d listed, want %d", x.Len(), len(x.List("")), ids)
	}
	for _, e := range x.List("") {
		if g := e.Load().Gen; g != 0 && s.saved[e.Load().ID].Gen != g {
			t.Errorf("%s: memory at generation %d, disk at %d", e.Load().ID, g, s.saved[e.Load().ID].Gen)
		}
	}
}

func TestMatchLabels(t *testing.T) {
	l := map[string]string{"app": "web", "tier": "front"}
	for _, tc := range []struct {
		sel  map[string]string
		want bool
	}{
		{nil, true},
		{map[string]string{"app": "web"}, true},
		{map[string]string{"app": "web", "tier": "front"}, true},
		{map[string]string{"app": "db"}, false},
		{map[string]string{"zone": ""}, false}, // absent is not empty
	} {
		if got := MatchLabels(l, tc.sel); got != tc.want {
			t.Errorf("MatchLabels(%v) = %v", tc.sel, got)
		}
	}
}
