package container

import (
	"sort"
)

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
	labels := s.Config.Labels
	for k, v := range f.LabelSelector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// sortByCreation gives List a stable order for people and chunked streams.
func sortByCreation(cs []*Snapshot) {
	sort.Slice(cs, func(i, j int) bool {
		if !cs[i].CreatedAt.Equal(cs[j].CreatedAt) {
			return cs[i].CreatedAt.Before(cs[j].CreatedAt)
		}
		return cs[i].ID < cs[j].ID
	})
}
