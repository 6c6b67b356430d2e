package spec

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestResolveUser(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		name       string
		image      string
		uid, gid   *int64
		username   string
		groups     []int64
		strict     bool
		nonRoot    bool
		wantUID    uint32
		wantGID    uint32
		wantGroups []uint32
		wantErr    string
	}{
		{name: "default root", wantUID: 0, wantGID: 0, wantGroups: []uint32{0}},
		{name: "image name", image: "app", wantUID: 1000, wantGID: 1000, wantGroups: []uint32{10, 29, 1000}},
		{name: "image uid with passwd entry", image: "1000", wantUID: 1000, wantGID: 1000, wantGroups: []uint32{10, 29, 1000}},
		{name: "image uid without entry", image: "4242", wantUID: 4242, wantGID: 0, wantGroups: []uint32{0}},
		{name: "image uid:gid", image: "4242:4343", wantUID: 4242, wantGID: 4343, wantGroups: []uint32{4343}},
		{name: "image name:group", image: "app:web", wantUID: 1000, wantGID: 33, wantGroups: []uint32{33}},
		{name: "image uid:group", image: "33:audio", wantUID: 33, wantGID: 29, wantGroups: []uint32{29}},
		{name: "run_as_user overrides image", image: "app", uid: i64(33), wantUID: 33, wantGID: 33, wantGroups: []uint32{10, 33}},
		{name: "run_as_username", image: "4242", username: "web", wantUID: 33, wantGID: 33, wantGroups: []uint32{10, 33}},
		{name: "run_as_user and group", uid: i64(1000), gid: i64(5), wantUID: 1000, wantGID: 5, wantGroups: []uint32{5}},
		{name: "run_as_group alone is refused", image: "app:web", gid: i64(7), wantErr: "run_as_group requires run_as_user"},
		{name: "run_as_group with run_as_user", uid: i64(1000), gid: i64(7), wantUID: 1000, wantGID: 7, wantGroups: []uint32{7}},
		{name: "merge supplemental groups", image: "app", groups: []int64{2000, 10}, wantUID: 1000, wantGID: 1000, wantGroups: []uint32{10, 29, 1000, 2000}},
		{name: "strict ignores /etc/group membership", image: "app", groups: []int64{2000}, strict: true, wantUID: 1000, wantGID: 1000, wantGroups: []uint32{1000, 2000}},
		{name: "unknown user", image: "nobody", wantErr: `user "nobody": no such user in the container's /etc/passwd`},
		{name: "unknown group", image: "app:nogroup", wantErr: `group "nogroup": no such group in the container's /etc/group`},
		{name: "negative run_as_user", uid: i64(-1), wantErr: "run_as_user -1 is out of range"},
		{name: "huge supplemental group", groups: []int64{1 << 40}, wantErr: "supplemental_groups[0]"},
		{name: "non-root policy with root", nonRoot: true, wantErr: "container's runAsUser breaks non-root policy"},
		{name: "non-root policy with run_as_user 0", nonRoot: true, uid: i64(0), wantErr: "breaks non-root policy"},
		{name: "non-root policy with named image user", nonRoot: true, image: "app", wantErr: "non-numeric user (app), cannot verify"},
		{name: "non-root policy with numeric image user", nonRoot: true, image: "1000", wantUID: 1000, wantGID: 1000, wantGroups: []uint32{10, 29, 1000}},
		{name: "non-root policy with numeric name mapping to root", nonRoot: true, image: "0:0", wantErr: "breaks non-root policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(t)
			in.Image.User = tc.image
			in.RunAsNonRoot = tc.nonRoot
			c := sc(&in)
			c.RunAsUser, c.RunAsGroup, c.RunAsUsername, c.SupplementalGroups = tc.uid, tc.gid, tc.username, tc.groups
			if tc.strict {
				c.SupplementalGroupsPolicy = GroupsStrict
			}
			s, _, err := Generate(in)
			wantErr(t, err, tc.wantErr, errInvalid)
			if err != nil {
				return
			}
			checkLibcontainer(t, s, in.Options)
			u := s.Process.User
			if u.UID != tc.wantUID || u.GID != tc.wantGID || !slices.Equal(u.AdditionalGids, tc.wantGroups) {
				t.Fatalf("user = %d:%d %v, want %d:%d %v", u.UID, u.GID, u.AdditionalGids, tc.wantUID, tc.wantGID, tc.wantGroups)
			}
		})
	}
}

// An image whose /etc/passwd is a symlink to the host's must not make crisp
// read the host's file: the link is resolved inside the rootfs.
func TestResolveUserSymlinkEscape(t *testing.T) {
	host := t.TempDir()
	writeFile(t, filepath.Join(host, "passwd"), "evil:x:0:0::/:/bin/sh\n")
	for _, target := range []string{
		filepath.Join(host, "passwd"),              // absolute
		"../../../../../../../" + host + "/passwd", // relative climb
	} {
		in := baseInput(t)
		p := filepath.Join(in.RootfsPath, "etc/passwd")
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		in.Image.User = "evil"
		_, _, err := Generate(in)
		// The link resolves to <rootfs>/<host>/passwd, which is missing.
		wantErr(t, err, `user "evil": no such user`, errInvalid)
	}

	// A link that stays inside the rootfs is followed.
	in := baseInput(t)
	writeFile(t, filepath.Join(in.RootfsPath, "usr/lib/passwd"), "svc:x:77:77::/:/bin/sh\n")
	p := filepath.Join(in.RootfsPath, "etc/passwd")
	os.Remove(p)
	if err := os.Symlink("/usr/lib/passwd", p); err != nil {
		t.Fatal(err)
	}
	in.Image.User = "svc"
	s, _ := mustGenerate(t, in)
	if s.Process.User.UID != 77 {
		t.Fatalf("uid = %d, want 77", s.Process.User.UID)
	}
}

func TestResolveUserOddFiles(t *testing.T) {
	// No /etc at all (distroless/scratch): numeric users work, names fail.
	in := baseInput(t)
	in.RootfsPath = t.TempDir()
	in.Image.User = "1234:5678"
	s, _ := mustGenerate(t, in)
	if s.Process.User.UID != 1234 || s.Process.User.GID != 5678 {
		t.Fatalf("user = %+v", s.Process.User)
	}
	in.Image.User = "app"
	_, _, err := Generate(in)
	wantErr(t, err, `user "app": no such user`, errInvalid)

	// /etc/passwd that is a directory (or a FIFO) is rejected, not read.
	in = baseInput(t)
	p := filepath.Join(in.RootfsPath, "etc/passwd")
	os.Remove(p)
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, err = Generate(in)
	wantErr(t, err, "/etc/passwd is not a regular file", errInvalid)
}
