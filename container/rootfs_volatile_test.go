package container

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crisp-runtime/crisp/internal/bootid"
)

func TestClearVolatileMarker(t *testing.T) {
	for _, c := range []struct {
		name, boot string // boot: "" no file, else its content
		marker     bool
		wantErr    bool
	}{
		{name: "first mount", marker: false},
		{name: "same boot", boot: bootid.Current(), marker: true},
		{name: "earlier boot", boot: "00000000-0000-0000-0000-000000000000", marker: true, wantErr: true},
		{name: "boot unknown", marker: true, wantErr: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			work, bootFile := filepath.Join(dir, "work"), filepath.Join(dir, volatileBootFile)
			if c.marker {
				if err := os.MkdirAll(volatileMarker(work), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if c.boot != "" {
				if err := os.WriteFile(bootFile, []byte(c.boot+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := clearVolatileMarker(work, bootFile)
			if c.wantErr {
				if err == nil || !strings.Contains(err.Error(), "remove the container") {
					t.Fatalf("err = %v, want the layer refused", err)
				}
				if _, err := os.Stat(volatileMarker(work)); err != nil {
					t.Fatalf("marker of a refused layer removed: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(volatileMarker(work)); !os.IsNotExist(err) {
				t.Fatalf("marker still there: %v", err)
			}
			if b, _ := os.ReadFile(bootFile); strings.TrimSpace(string(b)) != bootid.Current() {
				t.Fatalf("boot file %q, want %q", b, bootid.Current())
			}
		})
	}
}
