package sandbox

import (
	"errors"
	"strings"
	"testing"

	"github.com/crisp-runtime/crisp/errdefs"
)

func TestShmSize(t *testing.T) {
	limited := Config{Resources: &Resources{MemoryLimit: 3 << 30}, Overhead: &Resources{MemoryLimit: 1 << 20}}
	annotated := Config{Annotations: map[string]string{ShmSizeAnnotation: "2Gi"}, Resources: limited.Resources}
	for _, c := range []struct {
		name string
		opts ShmOptions
		cfg  Config
		want int64
	}{
		{"default", ShmOptions{}, Config{}, 64 << 20},
		{"configured", ShmOptions{Size: 1 << 30}, limited, 1 << 30},
		{"annotation wins", ShmOptions{Size: 1 << 30, PodMemoryLimit: true}, annotated, 2 << 30},
		{"pod memory limit plus overhead", ShmOptions{PodMemoryLimit: true}, limited, 3<<30 + 1<<20},
		{"no pod limit: the node's memory", ShmOptions{PodMemoryLimit: true}, Config{}, nodeMemory()},
	} {
		if got, err := c.opts.shmSize(c.cfg); err != nil || got != c.want {
			t.Errorf("%s: %d, %v; want %d", c.name, got, err, c.want)
		}
	}
	if nodeMemory() <= 64<<20 {
		t.Errorf("node memory %d: MemTotal not read", nodeMemory())
	}
	_, err := ShmOptions{}.shmSize(Config{Annotations: map[string]string{ShmSizeAnnotation: "64m"}})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), ShmSizeAnnotation) {
		t.Errorf("bad quantity: %v", err)
	}
}

func TestUlimitsAnnotationValidated(t *testing.T) {
	m := &Manager{}
	err := m.validateAnnotations(Config{Annotations: map[string]string{UlimitsAnnotation: "memlock=lots"}})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), UlimitsAnnotation) {
		t.Errorf("bad ulimits: %v", err)
	}
	if err := m.validateAnnotations(Config{Annotations: map[string]string{UlimitsAnnotation: "memlock=4096,nofile=100:200"}}); err != nil {
		t.Error(err)
	}
}
