package sandbox

import (
	"testing"
	"time"
)

func TestListFilters(t *testing.T) {
	m := testManager(t, nil)
	base := time.Now()
	for i, p := range []*Sandbox{
		pod("aaa111", "a", StateReady, map[string]string{"app": "web", "tier": "front"}),
		pod("aaa222", "b", StateNotReady, map[string]string{"app": "web"}),
		pod("bbb333", "c", StateReady, nil),
	} {
		p.CreatedAt = base.Add(time.Duration(i) * time.Second)
		addPod(t, m, p)
	}
	ids := func(pods []*Sandbox) []string {
		var out []string
		for _, p := range pods {
			out = append(out, p.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"all, oldest first", Filter{}, []string{"aaa111", "aaa222", "bbb333"}},
		{"full id", Filter{ID: "aaa222"}, []string{"aaa222"}},
		{"unique prefix", Filter{ID: "bbb"}, []string{"bbb333"}},
		{"ambiguous prefix matches nothing", Filter{ID: "aaa"}, nil},
		{"unknown id", Filter{ID: "zzz"}, nil},
		{"ready", Filter{State: StateReady}, []string{"aaa111", "bbb333"}},
		{"not ready", Filter{State: StateNotReady}, []string{"aaa222"}},
		{"label", Filter{LabelSelector: map[string]string{"app": "web"}}, []string{"aaa111", "aaa222"}},
		{"all labels must match", Filter{LabelSelector: map[string]string{"app": "web", "tier": "front"}}, []string{"aaa111"}},
		{"label value must match", Filter{LabelSelector: map[string]string{"app": "db"}}, nil},
		{"id and state", Filter{ID: "aaa2", State: StateReady}, nil},
		{"state and label", Filter{State: StateReady, LabelSelector: map[string]string{"app": "web"}}, []string{"aaa111"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ids(m.List(tc.f))
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestGetByPrefix(t *testing.T) {
	m := testManager(t, nil)
	addPod(t, m, pod("abc1", "a", StateReady, nil))
	addPod(t, m, pod("abc2", "b", StateReady, nil))
	if sb, err := m.Get("abc1"); err != nil || sb.ID != "abc1" {
		t.Fatalf("Get(abc1) = %v, %v", sb, err)
	}
	if _, err := m.Get("abc"); err == nil {
		t.Fatal("ambiguous prefix resolved")
	}
	if _, err := m.Get("x"); err == nil {
		t.Fatal("unknown id found")
	}
	if _, err := m.Get(""); err == nil {
		t.Fatal("empty id accepted")
	}
}
