package rlimit

import (
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	got, err := Parse([]string{"memlock=-1:-1", "nofile=1048576:1048576", "RLIMIT_CORE=0", " stack = 8388608:unlimited "})
	if err != nil {
		t.Fatal(err)
	}
	want := []specs.POSIXRlimit{
		{Type: "RLIMIT_MEMLOCK", Soft: Unlimited, Hard: Unlimited},
		{Type: "RLIMIT_NOFILE", Soft: 1048576, Hard: 1048576},
		{Type: "RLIMIT_CORE", Soft: 0, Hard: 0},
		{Type: "RLIMIT_STACK", Soft: 8388608, Hard: Unlimited},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"memlock", "mem=1", "nofile=10:5", "nofile=x", "nofile=1:2:3", "nofile=-2", "nofile=1,nofile=2"} {
		if _, err := Parse(strings.Split(bad, ",")); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

func TestMerge(t *testing.T) {
	base := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1, Hard: 1}, {Type: "RLIMIT_CORE"}}
	got := Merge(base, []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 2, Hard: 3}, {Type: "RLIMIT_NICE", Soft: 4, Hard: 4}})
	want := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 2, Hard: 3}, {Type: "RLIMIT_CORE"}, {Type: "RLIMIT_NICE", Soft: 4, Hard: 4}}
	if !reflect.DeepEqual(got, want) || base[0].Soft != 1 {
		t.Errorf("got %+v, want %+v (base %+v untouched)", got, want, base)
	}
}

func host(sysResource bool) Host {
	own := map[string]unix.Rlimit{}
	for _, k := range kinds {
		own[k.oci] = unix.Rlimit{Cur: Unlimited, Max: Unlimited}
	}
	own["RLIMIT_MEMLOCK"] = unix.Rlimit{Cur: 8 << 20, Max: 8 << 20}
	own["RLIMIT_NOFILE"] = unix.Rlimit{Cur: 1024, Max: 20000}
	return Host{Own: own, SysResource: sysResource, NrOpen: 1 << 20, ThreadsMax: 1000}
}

func TestBaselineIsExplicitAndGrantable(t *testing.T) {
	base, lowered := host(false).Baseline()
	if len(base) != len(kinds) {
		t.Fatalf("baseline lists %d of %d rlimits", len(base), len(kinds))
	}
	byType := map[string]specs.POSIXRlimit{}
	for _, l := range base {
		byType[l.Type] = l
	}
	if l := byType["RLIMIT_NOFILE"]; l.Soft != 20000 || l.Hard != 20000 || len(lowered) != 1 {
		t.Errorf("nofile %+v lowered %v: want 20000:20000, the daemon's hard limit, reported", l, lowered)
	}
	if l := byType["RLIMIT_SIGPENDING"]; l.Soft != 500 {
		t.Errorf("sigpending %+v, want threads-max/2", l)
	}
	base, lowered = host(true).Baseline()
	if len(lowered) != 0 || base[9].Hard != 1<<20 {
		t.Errorf("with CAP_SYS_RESOURCE: lowered %v, nofile %+v", lowered, base[9])
	}
}

func TestDefaultsRefuseWhatCannotBeGranted(t *testing.T) {
	if _, _, err := host(false).Defaults([]string{"memlock=-1:-1"}); err == nil || !strings.Contains(err.Error(), "CAP_SYS_RESOURCE") {
		t.Errorf("memlock above the daemon's without CAP_SYS_RESOURCE: %v", err)
	}
	if _, _, err := host(true).Defaults([]string{"nofile=2000000"}); err == nil || !strings.Contains(err.Error(), "nr_open") {
		t.Errorf("nofile above nr_open: %v", err)
	}
	ls, _, err := host(true).Defaults([]string{"memlock=-1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Type == "RLIMIT_MEMLOCK" && l.Hard != Unlimited {
			t.Errorf("memlock %+v", l)
		}
	}
	if _, err := host(false).Override("nofile=100:200,memlock=4096"); err != nil {
		t.Errorf("Override: %v", err)
	}
	if _, err := host(false).Override("nofile=100:30000"); err == nil {
		t.Error("Override above the daemon's hard nofile succeeded")
	}
}
