//go:build seccomp && cgo

package spec

import (
	"runtime"
	"testing"

	"github.com/opencontainers/runc/libcontainer/configs"
	libseccomp "github.com/opencontainers/runc/libcontainer/seccomp"
	"github.com/opencontainers/runc/libcontainer/specconv"
)

// These need libseccomp (go test -tags seccomp). They compile and load the
// filter exactly as runc init does at container start, on a throwaway OS
// thread: a goroutine that locks its thread and returns without unlocking
// makes the Go runtime end that thread, filter and all.

func runtimeDefaultConfig(t testing.TB, compat bool) *configs.Seccomp {
	t.Helper()
	in := baseInput(t)
	in.Options.SeccompCompatArches = compat
	sc(&in).Seccomp = &SecurityProfile{Type: ProfileRuntimeDefault}
	s, _, err := Generate(in)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := specconv.SetupSeccomp(s.Linux.Seccomp)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func loadOnThrowawayThread(cfg *configs.Seccomp) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		_, err := libseccomp.InitSeccomp(cfg)
		errc <- err
	}()
	return <-errc
}

func TestSeccompFilterLoads(t *testing.T) {
	for _, compat := range []bool{false, true} {
		if err := loadOnThrowawayThread(runtimeDefaultConfig(t, compat)); err != nil {
			t.Fatalf("compat=%v: libseccomp rejected the RuntimeDefault profile: %v", compat, err)
		}
	}
}

// BenchmarkSeccompLoad is the per-container-start cost in runc init:
// libseccomp rule building, BPF generation, runc's ENOSYS patch, and the
// kernel load.
func BenchmarkSeccompLoad(b *testing.B) {
	for _, compat := range []bool{false, true} {
		name := "native"
		if compat {
			name = "all-arches"
		}
		cfg := runtimeDefaultConfig(b, compat)
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if err := loadOnThrowawayThread(cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
