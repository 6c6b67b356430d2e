package sandbox

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/crisp-runtime/crisp/errdefs"
)

func TestValidateUserns(t *testing.T) {
	kubelet := []IDMap{{ContainerID: 0, HostID: 65536 * 3, Size: 65536}}
	for _, tc := range []struct {
		name   string
		mutate func(*NamespaceOptions)
		want   string // "" means valid
	}{
		{"host", func(*NamespaceOptions) {}, ""},
		{"node mode", func(o *NamespaceOptions) { o.User = ModeNode }, ""},
		{"kubelet's mapping", func(*NamespaceOptions) {}, ""},
		{"critest's mapping", func(o *NamespaceOptions) {
			o.UIDs = []IDMap{{HostID: 1000, Size: 100000}}
			o.GIDs = o.UIDs
		}, ""},
		{"node mode with mappings", func(o *NamespaceOptions) { o.User = ModeNode }, "only valid with mode POD"},
		{"container mode", func(o *NamespaceOptions) { o.User = ModeContainer }, "mode \"container\" is not supported"},
		{"target mode", func(o *NamespaceOptions) { o.User = ModeTarget }, "mode \"target\" is not supported"},
		{"no uids", func(o *NamespaceOptions) { o.UIDs = nil }, "uids: mode POD needs a mapping"},
		{"no gids", func(o *NamespaceOptions) { o.GIDs = nil }, "gids: mode POD needs a mapping"},
		{"two mappings", func(o *NamespaceOptions) {
			o.UIDs = []IDMap{{HostID: 1000, Size: 100000}, {HostID: 2000, Size: 100000}}
		}, "exactly one mapping"},
		{"root unmapped", func(o *NamespaceOptions) { o.GIDs = []IDMap{{ContainerID: 1, HostID: 1000, Size: 100000}} }, "container id 0"},
		{"empty range", func(o *NamespaceOptions) { o.UIDs = []IDMap{{HostID: 1000}} }, "length must not be 0"},
		{"host root", func(o *NamespaceOptions) { o.UIDs = []IDMap{{HostID: 0, Size: 65536}} }, "node's root"},
		{"overflow", func(o *NamespaceOptions) { o.UIDs = []IDMap{{HostID: 1<<32 - 65536, Size: 65536}} }, "32-bit"},
		{"last id", func(o *NamespaceOptions) { o.UIDs = []IDMap{{HostID: 1<<32 - 65537, Size: 65536}} }, ""},
		{"host network", func(o *NamespaceOptions) { o.Network = ModeNode }, "host's network"},
		{"host pid", func(o *NamespaceOptions) { o.PID = ModeNode }, "host's pid"},
		{"host ipc", func(o *NamespaceOptions) { o.IPC = ModeNode }, "host's ipc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := NamespaceOptions{Network: ModePod, PID: ModeContainer, IPC: ModePod}
			if tc.name != "host" {
				o.User, o.UIDs, o.GIDs = ModePod, kubelet, kubelet
			}
			if tc.name == "node mode" {
				o.UIDs, o.GIDs = nil, nil
			}
			tc.mutate(&o)
			c := validConfig()
			c.Namespaces = o
			err := c.validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want InvalidArgument containing %q", err, tc.want)
			}
		})
	}
}

func TestRootIDs(t *testing.T) {
	o := NamespaceOptions{User: ModePod, UIDs: []IDMap{{HostID: 70000, Size: 65536}}, GIDs: []IDMap{{HostID: 80000, Size: 65536}}}
	if uid, gid, ok := o.RootIDs(); !ok || uid != 70000 || gid != 80000 {
		t.Fatalf("RootIDs = %d, %d, %v", uid, gid, ok)
	}
	if _, _, ok := (NamespaceOptions{}).RootIDs(); ok {
		t.Fatal("a host user namespace pod has no mapped root")
	}
}

func TestSearchable(t *testing.T) {
	// Not t.TempDir, whose parent is private.
	dir, err := os.MkdirTemp("", "searchable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	inner := dir + "/a/b"
	if err := os.MkdirAll(inner, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := searchable(inner); err != nil {
		t.Fatalf("searchable(%s) = %v", inner, err)
	}
	if err := os.Chmod(dir+"/a", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := searchable(inner); err == nil || !strings.Contains(err.Error(), dir+"/a (mode 0700)") {
		t.Fatalf("searchable under a 0700 directory = %v", err)
	}
}
