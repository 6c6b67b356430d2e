package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crisp-runtime/crisp/container/spec"
	"github.com/crisp-runtime/crisp/errdefs"
)

func withImageVolume(c *Config, m *spec.Mount) *Config {
	c.Mounts = append(c.Mounts, *m)
	return c
}

// Bad image volumes fail before anything is created or leased.
func TestCreateImageVolumeValidation(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name    string
		m       *spec.Mount
		want    error
		message string
	}{
		{"writable", &spec.Mount{ContainerPath: "/v", Image: &spec.ImageSpec{Image: testImage.ID}}, errdefs.ErrInvalidArgument, "readonly must be true"},
		{"escaping sub-path", &spec.Mount{ContainerPath: "/v", Readonly: true, Image: &spec.ImageSpec{Image: testImage.ID}, ImageSubPath: "/etc"}, errdefs.ErrInvalidArgument, "image_sub_path"},
		{"image not pulled", &spec.Mount{ContainerPath: "/v", Readonly: true, Image: &spec.ImageSpec{Image: "example.com/data:1"}}, errdefs.ErrNotFound, "must be pulled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.m.Create(context.Background(), "pod1", withImageVolume(cfg("a"), tc.m))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.want, tc.message)
			}
		})
	}
	if len(e.images.leases) != 0 {
		t.Fatalf("leases left: %v", e.images.leases)
	}
	if ents, _ := os.ReadDir(e.opts.Root); len(ents) != 0 {
		t.Fatalf("directories left: %v", ents)
	}
}

func TestImageVolumeSource(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc", "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	// An absolute symlink in the image means the image's /etc, not the host's.
	if err := os.Symlink("/etc/app", filepath.Join(root, "cfg")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sub, want, err string
	}{
		{sub: "", want: root},
		{sub: "etc/app", want: filepath.Join(root, "etc", "app")},
		{sub: "cfg", want: filepath.Join(root, "etc", "app")},
		{sub: "missing", err: `image_sub_path "missing" does not exist in image sha256:x`},
	} {
		got, err := imageVolumeSource(root, ImageVolume{ContainerPath: "/v", ImageID: "sha256:x", SubPath: tc.sub})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("%q: err = %v, want %q", tc.sub, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Fatalf("%q: %q %v, want %q", tc.sub, got, err, tc.want)
		}
	}
}

func TestReadOnlyOverlayData(t *testing.T) {
	d, err := overlayData([]string{"/l2", "/l1"}, "", "")
	if err != nil || d != "lowerdir=/l2:/l1" {
		t.Fatalf("%q %v", d, err)
	}
}
