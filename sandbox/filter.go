package sandbox

import (
	"sort"
)

// Filter selects pods for List; zero values match everything.
type Filter struct {
	// ID matches a full id or a prefix of exactly one pod.
	ID            string
	State         State
	LabelSelector map[string]string
}

// match reports whether s passes every criterion except the id, which List
// resolves against the whole index first.
func (f *Filter) match(s *Sandbox) bool {
	if f.State != "" && s.State != f.State {
		return false
	}
	for k, v := range f.LabelSelector {
		if got, ok := s.Config.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// sortByCreation gives List a stable order: kubelet does not need one, but
// people reading crictl output and chunked streaming do.
func sortByCreation(pods []*Sandbox) {
	sort.Slice(pods, func(i, j int) bool {
		if !pods[i].CreatedAt.Equal(pods[j].CreatedAt) {
			return pods[i].CreatedAt.Before(pods[j].CreatedAt)
		}
		return pods[i].ID < pods[j].ID
	})
}
