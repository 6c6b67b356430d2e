package container

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBlockDeviceNames(t *testing.T) {
	sysfs := t.TempDir()
	uevents := map[string]string{
		"8:0":   "MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=disk\nDISKSEQ=1\n",
		"259:1": "MAJOR=259\nMINOR=1\nDEVNAME=nvme0n1p1\nDEVTYPE=partition\nPARTN=1\n",
		"253:0": "MAJOR=253\nMINOR=0\nDEVNAME=dm-0", // no final newline
		"7:3":   "MAJOR=7\nMINOR=3\nDEVTYPE=disk\n", // no DEVNAME
		"11:0":  "",
	}
	for key, content := range uevents {
		dir := filepath.Join(sysfs, "dev", "block", key)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "uevent"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := &blockDeviceNames{sysfs: sysfs}
	for _, tc := range []struct {
		major, minor uint64
		want         string
	}{
		{8, 0, "/dev/sda"},
		{259, 1, "/dev/nvme0n1p1"},
		{253, 0, "/dev/dm-0"},
		{7, 3, "7:3"},   // sysfs knows the device but not its name
		{11, 0, "11:0"}, // empty uevent
		{8, 16, "8:16"}, // not in sysfs
	} {
		if got := b.name(tc.major, tc.minor); got != tc.want {
			t.Errorf("name(%d, %d) = %q, want %q", tc.major, tc.minor, got, tc.want)
		}
	}

	// Device numbers of a running node do not change: the first answer is
	// kept, even for a device that appears later.
	dir := filepath.Join(sysfs, "dev", "block", "8:16")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "uevent"), []byte("DEVNAME=sdb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(sysfs, "dev", "block", "8:0")); err != nil {
		t.Fatal(err)
	}
	if got := b.name(8, 0); got != "/dev/sda" {
		t.Errorf("cached name of 8:0 = %q", got)
	}
	if got := b.name(8, 16); got != "8:16" {
		t.Errorf("cached name of 8:16 = %q", got)
	}
}

func TestUeventDevName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=disk\n", "sda"},
		{"DEVNAME=mapper/vg-root", "mapper/vg-root"},
		{"MAJOR=7\nMINOR=3\n", ""},
		{"XDEVNAME=no\n", ""},
		{"", ""},
	} {
		if got := ueventDevName(tc.in); got != tc.want {
			t.Errorf("ueventDevName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
