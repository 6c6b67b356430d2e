package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/crisp-runtime/crisp/internal/record"
)

// schemaVersion is bumped on incompatible changes of Sandbox's JSON form; a
// daemon refuses records newer than it understands rather than misread them.
const schemaVersion = 1

const recordName = "sandbox.json"

// store persists one record per pod under <root>/<id>/sandbox.json; the
// directory also holds the pod's hosts, hostname and resolv.conf.
type store struct {
	root string
}

func (s *store) records() *record.Store[Sandbox] {
	return &record.Store[Sandbox]{Root: s.root, File: recordName, Kind: "sandbox", Version: schemaVersion,
		ID: func(sb *Sandbox) string { return sb.ID }}
}

func (s *store) dir(id string) string { return filepath.Join(s.root, id) }

func (s *store) save(sb *Sandbox) error { return s.records().Save(sb.ID, sb) }

// delete removes the pod's whole record directory; the record goes first so
// that a crash half way leaves an orphan directory start-up removes.
func (s *store) delete(id string) error {
	if id == "" || strings.ContainsAny(id, "/.") {
		// dir("") is the root of every pod's record: never remove that.
		return fmt.Errorf("refusing to delete the record of pod id %q", id)
	}
	if err := s.records().DeleteRecord(id); err != nil {
		return err
	}
	return os.RemoveAll(s.dir(id))
}

// loadAll reads every record; orphans are leftovers of a Remove that crashed
// after deleting the record.
func (s *store) loadAll() (pods []*Sandbox, orphans []string, errs []error) {
	return s.records().LoadAll()
}

func (s *store) load(id string) (*Sandbox, error) { return s.records().Load(id) }
