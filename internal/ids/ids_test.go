package ids

import (
	"slices"
	"testing"
)

func TestNew(t *testing.T) {
	a, b := New(), New()
	if len(a) != 64 || a == b {
		t.Fatalf("ids %q %q", a, b)
	}
}

func TestResolve(t *testing.T) {
	all := slices.Values([]string{"abc123", "abd456", "ab"})
	for _, tc := range []struct {
		prefix, id  string
		ok, ambigua bool
	}{
		{"abc", "abc123", true, false},
		{"ab", "ab", true, false}, // an exact match wins over prefixes
		{"a", "", false, true},
		{"x", "", false, false},
	} {
		id, ok, amb := Resolve(all, tc.prefix)
		if id != tc.id || ok != tc.ok || amb != tc.ambigua {
			t.Errorf("Resolve(%q) = %q %v %v", tc.prefix, id, ok, amb)
		}
	}
}
