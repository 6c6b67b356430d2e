package sandbox

import (
	"errors"
	"strings"
	"testing"

	"github.com/crisp-runtime/crisp/errdefs"
)

func TestRootfsAnnotationValidated(t *testing.T) {
	m := &Manager{}
	for _, v := range []string{"", "copy", "Native", " native"} {
		err := m.validateAnnotations(Config{Annotations: map[string]string{RootfsAnnotation: v}})
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), RootfsAnnotation) || !strings.Contains(err.Error(), `"native"`) {
			t.Errorf("%q: %v", v, err)
		}
	}
	for _, v := range []string{RootfsOverlay, RootfsNative} {
		if err := m.validateAnnotations(Config{Annotations: map[string]string{RootfsAnnotation: v}}); err != nil {
			t.Errorf("%q: %v", v, err)
		}
	}
	if kind, ok, err := RootfsKind(nil); kind != RootfsOverlay || ok || err != nil {
		t.Errorf("no annotation: %q %v %v", kind, ok, err)
	}
}
