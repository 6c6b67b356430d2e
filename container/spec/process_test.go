package spec

import (
	"errors"
	"math"
	"slices"
	"syscall"
	"testing"

	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/errdefs"
)

func imageConfig(user string, entrypoint, cmd []string) imagespec.ImageConfig {
	return imagespec.ImageConfig{User: user, Entrypoint: entrypoint, Cmd: cmd}
}

func TestProcessArgs(t *testing.T) {
	for _, tc := range []struct {
		name            string
		entrypoint, cmd []string
		command, args   []string
		want            []string
		wantErr         string
	}{
		{name: "image only", entrypoint: []string{"/ep"}, cmd: []string{"a"}, want: []string{"/ep", "a"}},
		{name: "image cmd only", cmd: []string{"/bin/sh", "-c", "x"}, want: []string{"/bin/sh", "-c", "x"}},
		{name: "command replaces entrypoint and drops cmd", entrypoint: []string{"/ep"}, cmd: []string{"a"}, command: []string{"/c"}, want: []string{"/c"}},
		{name: "command and args", entrypoint: []string{"/ep"}, cmd: []string{"a"}, command: []string{"/c"}, args: []string{"x"}, want: []string{"/c", "x"}},
		{name: "args replace cmd only", entrypoint: []string{"/ep"}, cmd: []string{"a"}, args: []string{"x", "y"}, want: []string{"/ep", "x", "y"}},
		{name: "args without entrypoint", cmd: []string{"a"}, args: []string{"/x"}, want: []string{"/x"}},
		{name: "cleared entrypoint", entrypoint: []string{""}, cmd: []string{"/a"}, want: []string{"/a"}},
		{name: "nothing", wantErr: "no command specified"},
		{name: "cleared entrypoint and no cmd", entrypoint: []string{""}, wantErr: "no command specified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := imageConfig("", tc.entrypoint, tc.cmd)
			got, err := processArgs(&Config{Command: tc.command, Args: tc.args}, &img)
			wantErr(t, err, tc.wantErr, errInvalid)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("args = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestProcessEnv(t *testing.T) {
	kv := func(k, v string) KeyValue { return KeyValue{Key: k, Value: v} }
	for _, tc := range []struct {
		name    string
		image   []string
		cri     []KeyValue
		want    []string
		wantErr string
	}{
		{name: "defaults", want: []string{defaultPath, "HOSTNAME=h"}},
		{name: "image PATH replaces default in place", image: []string{"A=1", "PATH=/x"}, want: []string{"PATH=/x", "HOSTNAME=h", "A=1"}},
		{name: "cri overrides image by key, order kept", image: []string{"A=1", "B=2"}, cri: []KeyValue{kv("B", "3"), kv("C", "4")},
			want: []string{defaultPath, "HOSTNAME=h", "A=1", "B=3", "C=4"}},
		{name: "cri HOSTNAME wins", cri: []KeyValue{kv("HOSTNAME", "x")}, want: []string{defaultPath, "HOSTNAME=x"}},
		{name: "value with = and empty value", cri: []KeyValue{kv("A", "b=c"), kv("E", "")}, want: []string{defaultPath, "HOSTNAME=h", "A=b=c", "E="}},
		{name: "NUL in value", cri: []KeyValue{kv("A", "x\x00y")}, wantErr: "envs[0]"},
		{name: "= in key", cri: []KeyValue{kv("A=B", "x")}, wantErr: "envs[0]"},
		{name: "empty key", cri: []KeyValue{kv("", "x")}, wantErr: "envs[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := processEnv("h", tc.image, tc.cri)
			wantErr(t, err, tc.wantErr, errInvalid)
			if tc.wantErr == "" && !slices.Equal(got, tc.want) {
				t.Fatalf("env = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestProcessCwdTTY(t *testing.T) {
	for _, tc := range []struct{ cfg, image, want string }{
		{"", "", "/"},
		{"", "/img", "/img"},
		{"/cfg", "/img", "/cfg"},
	} {
		in := baseInput(t)
		in.Config.WorkingDir = tc.cfg
		in.Image.WorkingDir = tc.image
		in.Config.Tty = tc.cfg != ""
		s, _ := mustGenerate(t, in)
		if s.Process.Cwd != tc.want || s.Process.Terminal != (tc.cfg != "") {
			t.Errorf("cfg %q image %q: cwd %q terminal %v", tc.cfg, tc.image, s.Process.Cwd, s.Process.Terminal)
		}
		// containerd 2.x leaves rlimits to the runtime (inherited).
		if s.Process.Rlimits != nil {
			t.Errorf("rlimits = %v, want none", s.Process.Rlimits)
		}
	}
}

func TestStopSignal(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    syscall.Signal
		wantErr bool
	}{
		{"", syscall.SIGTERM, false},
		{"SIGQUIT", syscall.SIGQUIT, false},
		{"QUIT", syscall.SIGQUIT, false},
		{"sigint", syscall.SIGINT, false},
		{"9", syscall.SIGKILL, false},
		{" SIGUSR1 ", syscall.SIGUSR1, false},
		{"SIGRTMIN", 34, false},
		{"SIGRTMIN+3", 37, false},
		{"RTMAX-1", 63, false},
		{"SIGRTMAX", 64, false},
		{"SIGRTMIN+40", 0, true},
		{"0", 0, true},
		{"65", 0, true},
		{"-1", 0, true},
		{"SIGFOO", 0, true},
	} {
		got, err := StopSignal(imagespec.ImageConfig{StopSignal: tc.in})
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("StopSignal(%q) = %v, %v; want %v, err %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestProcessRlimits(t *testing.T) {
	in := &Input{Options: Options{Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 1024}, {Type: "RLIMIT_MEMLOCK", Soft: 8 << 20, Hard: 8 << 20}}}}
	got, err := processRlimits(in)
	if err != nil || len(got) != 2 || got[1].Hard != 8<<20 {
		t.Fatalf("defaults: %+v, %v", got, err)
	}
	in.Pod.Ulimits = "memlock=-1:-1"
	got, err = processRlimits(in)
	if err != nil || got[1].Hard != math.MaxUint64 || got[0].Hard != 1024 || in.Options.Rlimits[1].Hard != 8<<20 {
		t.Fatalf("pod override: %+v, %v", got, err)
	}
	in.Pod.Ulimits = "memlock=x"
	if _, err := processRlimits(in); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad annotation: %v", err)
	}
}
