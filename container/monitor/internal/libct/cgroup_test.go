package libct

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadEventCounts(t *testing.T) {
	f := filepath.Join(t.TempDir(), "memory.events")
	if err := os.WriteFile(f, []byte("low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ev, err := ReadEventCounts(f)
	if err != nil || ev["max"] != 12 || ev["oom_kill"] != 1 {
		t.Fatalf("%v %v", ev, err)
	}
}
