package container

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/crisp-runtime/crisp/internal/record"
)

// schemaVersion is bumped on incompatible changes of Container's JSON form;
// a daemon refuses records newer than it understands rather than misread them.
// Version 2 records crisp's own Config instead of the CRI message (version
// 1), which are still read: see Container.CRIConfig.
const schemaVersion = 2

const recordName = "container.json"

// store persists one record per container under <root>/<id>/container.json;
// the same directory holds the writable layer and the monitor's bundle.
type store struct {
	root string
	// decodeCRIConfig converts a version 1 record's config.
	decodeCRIConfig func([]byte) (*Config, error)
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
		if err := s.upgrade(c); err != nil {
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
	if err := s.upgrade(c); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(s.dir(id), recordName), err)
	}
	return c, nil
}

// upgrade fills Config of a record that schema version 1 wrote. The record
// on disk keeps the old form until the container's next change is saved.
func (s *store) upgrade(c *Container) error {
	if len(c.CRIConfig) == 0 {
		return nil
	}
	if s.decodeCRIConfig == nil {
		return errors.New("record of schema version 1, and no decoder for its CRI config")
	}
	cfg, err := s.decodeCRIConfig(c.CRIConfig)
	if err != nil {
		return fmt.Errorf("decode the CRI config of a version 1 record: %w", err)
	}
	c.Config, c.CRIConfig = *cfg, nil
	return nil
}
