package spec

import (
	"slices"
	"strconv"
	"strings"
	"syscall"

	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/rlimit"
	"github.com/crisp-runtime/crisp/sandbox"
)

const (
	// defaultPath is containerd's (and Docker's) PATH for images that set none.
	defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// maxArgs bounds command+args; the kernel's own limit (ARG_MAX) is on
	// bytes, this only stops absurd requests early.
	maxArgs = 64 << 10
)

// processArgs merges the request's command/args with the image's Entrypoint/Cmd the
// way Kubernetes documents it (and containerd implements it):
//   - command set: it replaces Entrypoint, and the image Cmd is dropped;
//     args (if any) follow it.
//   - only args set: image Entrypoint + args.
//   - neither: image Entrypoint + image Cmd.
//
// An Entrypoint of [""] is Docker's way of clearing it.
func processArgs(cfg *Config, img *imagespec.ImageConfig) ([]string, error) {
	command, args := cfg.Command, cfg.Args
	var out []string
	if len(command) > 0 {
		out = append(out, command...)
	} else {
		if !(len(img.Entrypoint) == 1 && img.Entrypoint[0] == "") {
			out = append(out, img.Entrypoint...)
		}
		if len(args) == 0 {
			args = img.Cmd
		}
	}
	out = append(out, args...)
	if len(out) == 0 {
		return nil, errdefs.InvalidArgument("no command specified: config.command, config.args and the image's Entrypoint and Cmd are all empty")
	}
	return out, nil
}

// processEnv builds the environment in containerd's order: default PATH,
// HOSTNAME, the image's variables, then the request's. A later entry with
// the same key replaces the earlier one in place, so an image's PATH takes
// the default PATH's slot and order stays stable across restarts.
func processEnv(hostname string, imageEnv []string, reqEnv []KeyValue) ([]string, error) {
	env := make([]string, 0, 2+len(imageEnv)+len(reqEnv))
	index := make(map[string]int, cap(env))
	set := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if k == "" {
			return
		}
		if i, ok := index[k]; ok {
			env[i] = kv
			return
		}
		index[k] = len(env)
		env = append(env, kv)
	}
	set(defaultPath)
	set("HOSTNAME=" + hostname)
	for _, kv := range imageEnv {
		set(kv)
	}
	for i, kv := range reqEnv {
		// Values are bytes in the CRI; execve takes C strings.
		if kv.Key == "" || strings.ContainsAny(kv.Key, "=\x00") || strings.IndexByte(kv.Value, 0) >= 0 {
			return nil, errdefs.InvalidArgument("envs[%d]: key %q: keys must be non-empty without '=' and neither may contain NUL", i, kv.Key)
		}
		set(kv.Key + "=" + kv.Value)
	}
	return env, nil
}

// processCwd is the request's working dir, else the image's, else "/".
// runc creates it if missing (as root, before switching user).
func processCwd(cfg *Config, img *imagespec.ImageConfig) string {
	switch {
	case cfg.WorkingDir != "":
		return cfg.WorkingDir
	case img.WorkingDir != "":
		return img.WorkingDir
	}
	return "/"
}

// processRlimits are the daemon's defaults with the pod's annotation over
// them. An exec gets them too: it runs with the container's process spec.
func processRlimits(in *Input) ([]specs.POSIXRlimit, error) {
	if in.Pod.Ulimits == "" {
		return slices.Clone(in.Options.Rlimits), nil
	}
	over, err := rlimit.Parse(strings.Split(in.Pod.Ulimits, ","))
	if err != nil {
		return nil, errdefs.InvalidArgument("pod annotation %s: %v", sandbox.UlimitsAnnotation, err)
	}
	return rlimit.Merge(in.Options.Rlimits, over), nil
}

// StopSignal is the signal StopContainer sends first: the image's
// STOPSIGNAL ("SIGQUIT", "QUIT", "sigquit", "3", "SIGRTMIN+3"), else SIGTERM.
func StopSignal(img imagespec.ImageConfig) (syscall.Signal, error) {
	return parseSignal(img.StopSignal)
}

func parseSignal(s string) (syscall.Signal, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return unix.SIGTERM, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > sigrtmax {
			return 0, errdefs.InvalidArgument("image stop signal %q is out of range", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	// Real-time signals: SIGRTMIN+n and SIGRTMAX-n, which SignalNum lacks.
	for _, rt := range []struct {
		prefix string
		base   int
		sign   int
	}{{"SIGRTMIN", sigrtmin, 1}, {"SIGRTMAX", sigrtmax, -1}} {
		rest, ok := strings.CutPrefix(name, rt.prefix)
		if !ok {
			continue
		}
		off := 0
		if rest != "" {
			op := "+"
			if rt.sign < 0 {
				op = "-"
			}
			num, ok := strings.CutPrefix(rest, op)
			n, err := strconv.Atoi(num)
			if !ok || err != nil || n < 0 {
				break
			}
			off = n * rt.sign
		}
		if sig := rt.base + off; sig >= sigrtmin && sig <= sigrtmax {
			return syscall.Signal(sig), nil
		}
	}
	return 0, errdefs.InvalidArgument("image stop signal %q is not a known signal", s)
}

// The kernel's real-time signal range; glibc reserves the first two, which is
// why SIGRTMIN is 34 to programs (and to Docker's signal table).
const (
	sigrtmin = 34
	sigrtmax = 64
)
