package sandbox

import "github.com/crisp-runtime/crisp/internal/index"

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
	return index.MatchLabels(s.Config.Labels, f.LabelSelector)
}
