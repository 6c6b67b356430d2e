package container

import (
	"fmt"
	"path/filepath"

	"github.com/crisp-runtime/crisp/internal/record"
)

// schemaVersion is bumped on incompatible changes of Container's JSON form;
// a daemon refuses records newer than it understands rather than misread them.
const schemaVersion = 1

const recordName = "container.json"

// store persists one record per container under <root>/<id>/container.json;
// the same directory holds the writable layer and the monitor's bundle.
type store struct {
	root string
}

func (s *store) records() *record.Store[Container] {
	return &record.Store[Container]{Root: s.root, File: recordName, Kind: "container", Version: schemaVersion,
		ID: func(c *Container) string { return c.ID }}
}

func (s *store) dir(id string) string { return filepath.Join(s.root, id) }

func (s *store) save(c *Container) error { return s.records().Save(c.ID, c) }

// deleteRecord removes the record durably: from then on the directory is
// an orphan that start-up cleans up should removing the rest be interrupted.
func (s *store) deleteRecord(id string) error { return s.records().DeleteRecord(id) }

// loadAll reads every record; orphans are directories of a Remove (or a very
// early Create) that was interrupted.
func (s *store) loadAll() (cs []*Container, orphans []string, errs []error) {
	all, orphans, errs := s.records().LoadAll()
	for _, c := range all {
		if err := c.parseConfig(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Join(s.dir(c.ID), recordName), err))
			continue
		}
		cs = append(cs, c)
	}
	return cs, orphans, errs
}

func (s *store) load(id string) (*Container, error) {
	c, err := s.records().Load(id)
	if err != nil {
		return nil, err
	}
	if err := c.parseConfig(); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(s.dir(id), recordName), err)
	}
	return c, nil
}
