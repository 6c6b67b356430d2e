package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// schemaVersion is bumped on incompatible changes of Container's JSON form;
// a daemon refuses records newer than it understands rather than misread them.
const schemaVersion = 1

const recordName = "container.json"

type recordFile struct {
	Version   int        `json:"version"`
	Container *Container `json:"container"`
}

// store persists one record per container under <root>/<id>/container.json;
// the same directory holds the writable layer and the monitor's bundle.
type store struct {
	root string
}

func (s *store) dir(id string) string { return filepath.Join(s.root, id) }

// save replaces the record atomically and durably: after a crash or power
// loss there is either the old or the new record, never a torn one.
func (s *store) save(c *Container) error {
	dir := s.dir(c.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	data, err := json.Marshal(recordFile{Version: schemaVersion, Container: c})
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, recordName), data, 0o600)
}

// deleteRecord removes the record durably: from then on the directory is
// an orphan that start-up cleans up should removing the rest be interrupted.
func (s *store) deleteRecord(id string) error {
	dir := s.dir(id)
	if err := os.Remove(filepath.Join(dir, recordName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := syncDir(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// loadAll reads every record. Directories without a record are orphans:
// leftovers of a Remove (or a very early Create) that was interrupted. A
// record that cannot be read is reported in errs and left alone, for a
// person to look at.
func (s *store) loadAll() (cs []*Container, orphans []string, errs []error) {
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
		c, err := s.load(e.Name())
		switch {
		case errors.Is(err, os.ErrNotExist):
			orphans = append(orphans, e.Name())
		case err != nil:
			errs = append(errs, err)
		default:
			cs = append(cs, c)
		}
	}
	return cs, orphans, errs
}

func (s *store) load(id string) (*Container, error) {
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
	case rf.Version < 1 || rf.Container == nil:
		return nil, fmt.Errorf("%s: not a container record", path)
	case rf.Container.ID != id:
		return nil, fmt.Errorf("%s: record is for container %q", path, rf.Container.ID)
	}
	if err := rf.Container.parseConfig(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rf.Container, nil
}

// writeFileAtomic writes data to a temporary file in path's directory, syncs
// it, renames it over path and syncs the directory so the rename is durable.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
