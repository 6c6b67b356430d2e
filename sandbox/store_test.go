package sandbox

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestStoreRoundTrip(t *testing.T) {
	s := &store{root: t.TempDir()}
	sb := pod("p1", "web", StateReady, map[string]string{"a": "b"})
	sb.CreatedAt = time.Unix(1700000000, 123).UTC()
	sb.Config.Annotations = map[string]string{"k": "v"}
	sb.Namespaces = map[string]string{NSNet: "/run/x/net"}
	sb.Reaper = &Reaper{PID: 42, StartTime: 99}
	sb.Network = PodNetwork{IPs: []string{"10.0.0.2"}, Attached: true, Raw: []byte(`{"cniVersion":"1.0.0"}`)}
	if err := s.save(sb); err != nil {
		t.Fatal(err)
	}
	got, orphans, errs := s.loadAll()
	if len(errs) > 0 || len(orphans) > 0 || len(got) != 1 {
		t.Fatalf("loadAll = %v, %v, %v", got, orphans, errs)
	}
	if !reflect.DeepEqual(got[0], sb) {
		t.Fatalf("loaded\n%+v\nwant\n%+v", got[0], sb)
	}
	entries, _ := os.ReadDir(s.dir("p1"))
	for _, e := range entries {
		if e.Name() != recordName {
			t.Errorf("stray file %s after save", e.Name())
		}
	}
	data, _ := os.ReadFile(filepath.Join(s.dir("p1"), recordName))
	if !strings.Contains(string(data), `"version":1`) {
		t.Errorf("record lacks its schema version:\n%s", data)
	}
}

func TestStoreSaveReplaces(t *testing.T) {
	s := &store{root: t.TempDir()}
	sb := pod("p1", "web", StateCreating, nil)
	if err := s.save(sb); err != nil {
		t.Fatal(err)
	}
	sb.State = StateReady
	if err := s.save(sb); err != nil {
		t.Fatal(err)
	}
	got, err := s.load("p1")
	if err != nil || got.State != StateReady {
		t.Fatalf("load = %v, %v", got, err)
	}
}

func TestStoreLoadProblems(t *testing.T) {
	s := &store{root: t.TempDir()}
	write := func(id, body string) {
		os.MkdirAll(s.dir(id), 0o700)
		os.WriteFile(filepath.Join(s.dir(id), recordName), []byte(body), 0o600)
	}
	write("newer", `{"version": 99, "sandbox": {"id": "newer"}}`)
	write("torn", `{"version": 1, "sandbox": {"id": "to`)
	write("wrongid", `{"version": 1, "sandbox": {"id": "other"}}`)
	// A Run that crashed before its first rename leaves only a temp file.
	os.MkdirAll(s.dir("orphan"), 0o700)
	os.WriteFile(filepath.Join(s.dir("orphan"), "."+recordName+".tmp123"), []byte("{"), 0o600)
	if err := s.save(pod("good", "g", StateReady, nil)); err != nil {
		t.Fatal(err)
	}

	pods, orphans, errs := s.loadAll()
	if len(pods) != 1 || pods[0].ID != "good" {
		t.Errorf("pods = %v", pods)
	}
	if len(orphans) != 1 || orphans[0] != "orphan" {
		t.Errorf("orphans = %v", orphans)
	}
	if len(errs) != 3 {
		t.Errorf("errs = %v, want 3", errs)
	}
	for _, err := range errs {
		if strings.Contains(err.Error(), "newer") && !strings.Contains(err.Error(), "newer than") {
			t.Errorf("newer schema error does not say so: %v", err)
		}
	}
}

func TestStoreDelete(t *testing.T) {
	s := &store{root: t.TempDir()}
	if err := s.save(pod("p1", "web", StateReady, nil)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.dir("p1"), "hosts"), []byte("x"), 0o644)
	if err := s.delete("p1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.dir("p1")); !os.IsNotExist(err) {
		t.Fatalf("pod dir still there: %v", err)
	}
	if err := s.delete("p1"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
}

func TestRecoveryDecisions(t *testing.T) {
	healthy := podHealth{pinsOK: true, reaperOK: true}
	for _, tc := range []struct {
		name  string
		state State
		h     podHealth
		want  recoverAction
	}{
		{"interrupted creation is rolled back", StateCreating, healthy, rollBack},
		{"interrupted creation is rolled back even if broken", StateCreating, podHealth{}, rollBack},
		{"healthy ready pod is kept", StateReady, healthy, keepPod},
		{"ready pod without pins (reboot)", StateReady, podHealth{pinsOK: false, reaperOK: true}, markNotReady},
		{"ready pod whose reaper died", StateReady, podHealth{pinsOK: true, reaperOK: false}, markNotReady},
		{"stopped pod is kept as is", StateNotReady, podHealth{}, keepPod},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decide(&Sandbox{State: tc.state}, tc.h); got != tc.want {
				t.Fatalf("decide = %v, want %v", got, tc.want)
			}
		})
	}
}
