package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/crisp-runtime/crisp/internal/atomicfile"
)

// schemaVersion is bumped on incompatible changes of Sandbox's JSON form; a
// daemon refuses records newer than it understands rather than misread them.
const schemaVersion = 1

const recordName = "sandbox.json"

type recordFile struct {
	Version int      `json:"version"`
	Sandbox *Sandbox `json:"sandbox"`
}

// store persists one record per pod under <root>/<id>/sandbox.json.
type store struct {
	root string
}

func (s *store) dir(id string) string { return filepath.Join(s.root, id) }

// save replaces the record atomically and durably: after it returns, a crash
// or power loss leaves either the old or the new record, never a torn one.
func (s *store) save(sb *Sandbox) error {
	dir := s.dir(sb.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	data, err := json.Marshal(recordFile{Version: schemaVersion, Sandbox: sb})
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, recordName), data, 0o600)
}

// delete removes the pod's whole record directory; the record goes first so
// that a crash half way leaves no half-record, only files load ignores.
func (s *store) delete(id string) error {
	dir := s.dir(id)
	if err := os.Remove(filepath.Join(dir, recordName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := atomicfile.SyncDir(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.RemoveAll(dir)
}

// loadAll reads every record. Directories without a record are returned in
// orphans: leftovers of a Remove that crashed after deleting the record.
// A record that cannot be read is reported in errs and otherwise left alone,
// for a person to look at.
func (s *store) loadAll() (pods []*Sandbox, orphans []string, errs []error) {
	entries, err := os.ReadDir(s.root)
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
		sb, err := s.load(e.Name())
		switch {
		case errors.Is(err, os.ErrNotExist):
			orphans = append(orphans, e.Name())
		case err != nil:
			errs = append(errs, err)
		default:
			pods = append(pods, sb)
		}
	}
	return pods, orphans, errs
}

func (s *store) load(id string) (*Sandbox, error) {
	path := filepath.Join(s.dir(id), recordName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rf recordFile
	if err := json.Unmarshal(data, &rf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case rf.Version > schemaVersion:
		return nil, fmt.Errorf("%s: schema version %d is newer than this crisp understands (%d)", path, rf.Version, schemaVersion)
	case rf.Version < 1 || rf.Sandbox == nil:
		return nil, fmt.Errorf("%s: not a sandbox record", path)
	case rf.Sandbox.ID != id:
		return nil, fmt.Errorf("%s: record is for pod %q", path, rf.Sandbox.ID)
	}
	return rf.Sandbox, nil
}
