package config

import (
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The installed /etc/crisp/crisp.toml is rendered from Default(), so it
// cannot drift from it; these pin what "cannot drift" means: as installed it
// is the defaults, every key uncommented it is still the defaults, and every
// key says what it does.
func TestCommentedIsTheDefaults(t *testing.T) {
	s, err := Default().Commented()
	if err != nil {
		t.Fatal(err)
	}
	asInstalled, err := Load(writeFile(t, s), true)
	if err != nil {
		t.Fatalf("the commented file does not load: %v\n%s", err, s)
	}
	if !reflect.DeepEqual(asInstalled, Default()) {
		t.Errorf("the commented file loads as\n%+v\nnot the defaults\n%+v", asInstalled, Default())
	}

	keyComment := regexp.MustCompile(`(?m)^(\s*)# ([a-z0-9_]+ = )`)
	uncommented := keyComment.ReplaceAllString(s, "$1$2")
	all, err := Load(writeFile(t, uncommented), true)
	if err != nil {
		t.Fatalf("uncommenting every key breaks the file: %v\n%s", err, uncommented)
	}
	if !reflect.DeepEqual(all, Default()) {
		t.Errorf("every key uncommented loads as\n%+v\nnot the defaults\n%+v", all, Default())
	}

	m, err := Default().Map()
	if err != nil {
		t.Fatal(err)
	}
	want := leafKeys("", m)
	if got := len(keyComment.FindAllString(s, -1)); got != len(want) {
		t.Errorf("%d keys commented out, the defaults have %d: %v", got, len(want), want)
	}
	docs := keyDocs()
	for _, k := range want {
		if docs[k] == "" {
			t.Errorf("key %s has no description: give its flag a usage ending in (key %s)", k, k)
		}
	}
	// ... and every key a flag sets is in the file (an empty default
	// must not make the encoder leave it out).
	for k := range docs {
		if !slices.Contains(want, k) {
			t.Errorf("key %s (a flag sets it) is not in the file", k)
		}
	}
}

// leafKeys lists the dotted names of m's values; empty tables (registries)
// have none.
func leafKeys(prefix string, m map[string]any) []string {
	var keys []string
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			keys = append(keys, leafKeys(prefix+k+".", sub)...)
			continue
		}
		keys = append(keys, prefix+k)
	}
	return keys
}

func TestMapSpellsTheFile(t *testing.T) {
	c := Default()
	c.Registries["docker.io"] = Registry{Mirrors: []string{"http://127.0.0.1:5000"}, SkipUpstream: true}
	m, err := c.Map()
	if err != nil {
		t.Fatal(err)
	}
	if got := m["image_pull_progress_timeout"]; got != "5m0s" {
		t.Errorf("image_pull_progress_timeout = %#v, want \"5m0s\"", got)
	}
	streaming := m["streaming"].(map[string]any)
	if got := streaming["idle_timeout"]; got != "4h0m0s" {
		t.Errorf("streaming.idle_timeout = %#v, want \"4h0m0s\"", got)
	}
	reg := m["registries"].(map[string]any)["docker.io"].(map[string]any)
	if reg["skip_upstream"] != true {
		t.Errorf("registries.docker.io = %#v", reg)
	}
	for _, k := range leafKeys("", m) {
		if strings.ContainsAny(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			t.Errorf("key %s is a Go field name, not the file's", k)
		}
	}
}
