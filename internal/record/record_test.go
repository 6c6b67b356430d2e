package record

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/crisp-runtime/crisp/internal/atomicfile"
)

type thing struct {
	ID   string `json:"id"`
	Note string `json:"note"`
}

func newStore(t *testing.T) *Store[thing] {
	return &Store[thing]{Root: t.TempDir(), File: "thing.json", Kind: "thing", Version: 2, ID: func(x *thing) string { return x.ID }}
}

func TestSaveLoadDelete(t *testing.T) {
	s := newStore(t)
	if err := s.Save("a", &thing{ID: "a", Note: "hi"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load("a")
	if err != nil || got.Note != "hi" {
		t.Fatalf("load: %+v %v", got, err)
	}
	if err := s.DeleteRecord("a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRecord("a"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := s.Load("a"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("want ErrNotExist, got %v", err)
	}
	items, orphans, errs := s.LoadAll()
	if len(items) != 0 || len(orphans) != 1 || orphans[0] != "a" || len(errs) != 0 {
		t.Fatalf("after delete: %v %v %v", items, orphans, errs)
	}
}

func TestLoadRejectsBadRecords(t *testing.T) {
	s := newStore(t)
	for id, body := range map[string]string{
		"torn":    `{"version": 1, "thi`,
		"newer":   `{"version": 3, "thing": {"id": "newer"}}`,
		"other":   `{"version": 1, "pod": {"id": "other"}}`,
		"foreign": `{"version": 1, "thing": {"id": "someone-else"}}`,
		"noversn": `{"thing": {"id": "noversn"}}`,
	} {
		if err := os.MkdirAll(s.Dir(id), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.Dir(id), s.File), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Save("ok", &thing{ID: "ok"}); err != nil {
		t.Fatal(err)
	}
	items, orphans, errs := s.LoadAll()
	if len(items) != 1 || items[0].ID != "ok" || len(orphans) != 0 || len(errs) != 5 {
		t.Fatalf("items %v orphans %v errs %v", items, orphans, errs)
	}
	for _, err := range errs {
		if !strings.Contains(err.Error(), s.Root) {
			t.Errorf("error does not name the file: %v", err)
		}
	}
}

// Start-up must know which object an unreadable record belongs to, so that
// it keeps (quarantines) what that object owns instead of sweeping it.
func TestUnreadableRecordsNameTheirObject(t *testing.T) {
	s := newStore(t)
	if err := os.MkdirAll(s.Dir("bad"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir("bad"), s.File), []byte(`{"version": 9, "thing": {}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, errs := s.LoadAll()
	if len(errs) != 1 {
		t.Fatalf("errs = %v", errs)
	}
	var le *LoadError
	if !errors.As(errs[0], &le) || le.ID != "bad" {
		t.Fatalf("error %v does not name the object: %#v", errs[0], le)
	}
}

// Creating an object's directory is a change of Root: it is made durable
// with the record, or a power loss could keep the record's data but lose
// the directory entry that leads to it.
func TestSaveSyncsTheNewDirectorysParent(t *testing.T) {
	s := newStore(t)
	var synced []string
	syncDir = func(dir string) error { synced = append(synced, dir); return nil }
	t.Cleanup(func() { syncDir = atomicfile.SyncDir })
	if err := s.Save("a", &thing{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(synced, s.Root) {
		t.Errorf("creating %s synced %v, not its parent", s.Dir("a"), synced)
	}
	synced = nil
	if err := s.Save("a", &thing{ID: "a", Note: "again"}); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(synced, s.Root) {
		t.Errorf("rewriting a record synced its parent again: %v", synced)
	}
}
