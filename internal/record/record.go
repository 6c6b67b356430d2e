// Package record keeps one small, versioned JSON record per object (pod,
// container) in a directory of its own, written durably so that a crash
// leaves either the old or the new record. The directory also holds the
// object's other files, so a directory without a record is an orphan of an
// interrupted create or remove that start-up cleans up.
package record

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/crisp-runtime/crisp/internal/atomicfile"
)

// LoadError is an unreadable record of object ID: damaged, or written by a
// newer crisp.
type LoadError struct {
	ID  string
	Err error
}

func (e *LoadError) Error() string { return e.Err.Error() }
func (e *LoadError) Unwrap() error { return e.Err }

// syncDir is atomicfile.SyncDir; tests watch it.
var syncDir = atomicfile.SyncDir

// Store holds records of type T under Root/<id>/File as {"version": N, Kind: T}.
type Store[T any] struct {
	Root string
	File string // e.g. "sandbox.json"
	Kind string // the envelope key and the word in messages, e.g. "sandbox"
	// Version is bumped on incompatible changes of T's JSON form; a daemon
	// refuses records newer than it understands rather than misread them.
	Version int
	// ID returns the id stored inside a record, checked against its directory.
	ID func(*T) string
}

// Dir is the object's directory.
func (s *Store[T]) Dir(id string) string { return filepath.Join(s.Root, id) }

// Save replaces the record of id atomically and durably.
func (s *Store[T]) Save(id string, v *T) error {
	dir := s.Dir(id)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		// The new directory's entry in Root must be as durable as the
		// record inside it.
		if err := syncDir(s.Root); err != nil {
			return err
		}
	}
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	data, err := json.Marshal(map[string]json.RawMessage{
		"version": json.RawMessage(fmt.Sprint(s.Version)),
		s.Kind:    body,
	})
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, s.File), data, 0o600)
}

// DeleteRecord removes the record durably; from then on the directory is an
// orphan that LoadAll reports, should removing the rest be interrupted.
func (s *Store[T]) DeleteRecord(id string) error {
	err := atomicfile.Remove(filepath.Join(s.Dir(id), s.File))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Load reads the record of id; a missing record is os.ErrNotExist.
func (s *Store[T]) Load(id string) (*T, error) {
	path := filepath.Join(s.Dir(id), s.File)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var version int
	if err := json.Unmarshal(env["version"], &version); err != nil || version < 1 {
		return nil, fmt.Errorf("%s: not a %s record", path, s.Kind)
	}
	if version > s.Version {
		return nil, fmt.Errorf("%s: schema version %d is newer than this crisp understands (%d)", path, version, s.Version)
	}
	body, ok := env[s.Kind]
	if !ok || string(body) == "null" {
		return nil, fmt.Errorf("%s: not a %s record", path, s.Kind)
	}
	v := new(T)
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if got := s.ID(v); got != id {
		return nil, fmt.Errorf("%s: record is for %s %q", path, s.Kind, got)
	}
	return v, nil
}

// LoadAll reads every record. Directories without a record are returned in
// orphans. A record that cannot be read is reported in errs as a
// *LoadError naming its object, and otherwise left alone, for a person to
// look at: the caller must keep what that object owns.
func (s *Store[T]) LoadAll() (items []*T, orphans []string, errs []error) {
	entries, err := os.ReadDir(s.Root)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		return nil, nil, errs
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		v, err := s.Load(e.Name())
		switch {
		case errors.Is(err, os.ErrNotExist):
			orphans = append(orphans, e.Name())
		case err != nil:
			errs = append(errs, &LoadError{ID: e.Name(), Err: err})
		default:
			items = append(items, v)
		}
	}
	return items, orphans, errs
}
