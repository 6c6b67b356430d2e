package record

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
