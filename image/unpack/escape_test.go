package unpack

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// onlyLayer fails if anything other than the layer dir appeared next to it,
// i.e. if an entry escaped one or more levels up.
func onlyLayer(t *testing.T, layer string) {
	t.Helper()
	for _, up := range []string{filepath.Dir(layer), filepath.Dir(filepath.Dir(layer))} {
		ents, err := os.ReadDir(up)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Name() == "evil" || e.Name() == "x" || e.Name() == "passwd" {
				t.Errorf("entry escaped to %s", filepath.Join(up, e.Name()))
			}
		}
	}
}

func TestApplyRejectsEscapingNames(t *testing.T) {
	tests := []struct {
		name    string
		entries []entry
		errText string
	}{
		{"dotdot", []entry{file("../evil", "x")}, `layer entry "../evil": path escapes the layer directory`},
		{"nested dotdot", []entry{file("a/../../evil", "x")}, `layer entry "a/../../evil": path escapes the layer directory`},
		{"absolute dotdot", []entry{file("/../evil", "x")}, "path escapes the layer directory"},
		{"whiteout dotdot", []entry{file("../.wh.evil", "")}, "path escapes the layer directory"},
		{"hard link outside", []entry{hardlink("h", "../../etc/passwd")}, `hard link target "../../etc/passwd": path escapes the layer directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			layer, _, err := applyEntries(t, tt.entries...)
			if err == nil || !strings.Contains(err.Error(), tt.errText) {
				t.Fatalf("err = %v, want %q", err, tt.errText)
			}
			if !errors.Is(err, errEscape) {
				t.Errorf("error does not wrap errEscape: %v", err)
			}
			onlyLayer(t, layer)
		})
	}
}

// Symlinks in the layer are resolved as inside the container, so writes
// through them land in the layer dir, never on the host.
func TestApplySymlinkTraversalStaysInside(t *testing.T) {
	hostPasswd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Skip("no /etc/passwd to compare against")
	}
	tests := []struct {
		name    string
		entries []entry
		inside  string // where the write must land, relative to the layer
	}{
		{"link to root", []entry{symlink("link", "/"), file("link/etc/passwd", "pwned")}, "etc/passwd"},
		{"link climbing up", []entry{symlink("l", "../../.."), file("l/x", "pwned")}, "x"},
		{"nested link to parent", []entry{dir("a"), symlink("a/up", "../../../../"), file("a/up/evil", "pwned")}, "evil"},
		{"link to absolute dir", []entry{symlink("etc", "/etc"), file("etc/passwd", "pwned")}, ""},
		{"dir link then whiteout", []entry{symlink("l", "/"), file("l/.wh.evil", "")}, "evil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			layer, _, err := applyEntries(t, tt.entries...)
			if tt.inside != "" {
				if err != nil {
					t.Fatalf("Apply: %v", err)
				}
				if _, err := os.Lstat(filepath.Join(layer, tt.inside)); err != nil {
					t.Errorf("expected write at %s inside the layer: %v", tt.inside, err)
				}
			}
			if got, _ := os.ReadFile("/etc/passwd"); string(got) != string(hostPasswd) {
				t.Fatal("host /etc/passwd was modified")
			}
			onlyLayer(t, layer)
		})
	}
}

func TestApplyHardLinkThroughSymlinkStaysInside(t *testing.T) {
	layer, _, err := applyEntries(t, symlink("link", "/"), hardlink("h", "link/etc/passwd"))
	if err == nil {
		t.Fatal("hard link to a host file via symlink succeeded")
	}
	if _, err := os.Lstat(filepath.Join(layer, "h")); err == nil {
		t.Error("hard link created")
	}
}
