package cinit

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runc/libcontainer/configs"
)

func TestDedupEnv(t *testing.T) {
	got, err := dedupEnv([]string{"A=1", "PATH=/x", "B=", "A=2", "HOME=", "PATH=/bin"})
	if want := []string{"B=", "A=2", "PATH=/bin"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("dedupEnv = %q, %v; want %q", got, err, want)
	}
	for _, bad := range [][]string{{"NOEQUALS"}, {"=v"}, {"A=a\x00b"}} {
		if _, err := dedupEnv(bad); err == nil {
			t.Errorf("dedupEnv(%q) took it", bad)
		}
	}
}

func TestParseReport(t *testing.T) {
	pidRec := func(pid int32) []byte {
		return append([]byte{'P'}, binary.NativeEndian.AppendUint32(nil, uint32(pid))...)
	}
	cases := []struct {
		in      []byte
		pid     int
		wantMsg string
	}{
		{pidRec(42), 42, ""},
		{append(pidRec(42), "Eexec: boom"...), 42, "exec: boom"},
		{append([]byte("Echdir failed"), pidRec(7)...), 0, "chdir failed"},
		{[]byte("P\x01"), 0, "short record"},
		{[]byte("?"), 0, "sent"},
		{nil, 0, ""},
	}
	for _, c := range cases {
		pid, msg := parseReport(c.in)
		if pid != c.pid || (c.wantMsg == "") != (msg == "") || !strings.Contains(msg, c.wantMsg) {
			t.Errorf("parseReport(%q) = %d, %q; want %d, %q", c.in, pid, msg, c.pid, c.wantMsg)
		}
	}
}

func TestCapMasks(t *testing.T) {
	b := capMasks(&configs.Capabilities{
		Bounding:  []string{"CAP_CHOWN", "CAP_KILL", "CAP_NO_SUCH_THING"},
		Effective: []string{"CAP_NET_BIND_SERVICE"},
		Ambient:   []string{"CAP_SYS_ADMIN"},
	})
	var got [5]uint64
	for i := range got {
		got[i] = binary.NativeEndian.Uint64(b[8*i:])
	}
	want := [5]uint64{1<<0 | 1<<5, 1 << 10, 0, 0, 1 << 21}
	if got != want {
		t.Errorf("capMasks = %x, want %x", got, want)
	}
}
