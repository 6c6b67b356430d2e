package container

import "github.com/crisp-runtime/crisp/internal/index"

// Filter selects containers for List; zero values match everything.
type Filter struct {
	// ID matches a full id or a prefix of exactly one container.
	ID            string
	PodID         string
	State         *State
	LabelSelector map[string]string
}

// match reports whether s passes every criterion except the id, which List
// resolves against the whole index first.
func (f *Filter) match(s *Snapshot) bool {
	if f.PodID != "" && s.PodID != f.PodID {
		return false
	}
	if f.State != nil && s.Status.State != *f.State {
		return false
	}
	return index.MatchLabels(s.Config.Labels, f.LabelSelector)
}
