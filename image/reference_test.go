package image

import (
	"errors"
	"strings"
	"testing"

	"github.com/crisp-runtime/crisp/errdefs"
)

const hexA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func TestParseReference(t *testing.T) {
	for _, tc := range []struct {
		in, want, tagRef, digestRef string
	}{
		{"busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox:latest", ""},
		{"busybox:1.28", "docker.io/library/busybox:1.28", "docker.io/library/busybox:1.28", ""},
		{"library/busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox:latest", ""},
		{"docker.io/busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox:latest", ""},
		{"index.docker.io/library/busybox:1", "docker.io/library/busybox:1", "docker.io/library/busybox:1", ""},
		{"index.docker.io/busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox:latest", ""},
		{"bitnami/redis:7", "docker.io/bitnami/redis:7", "docker.io/bitnami/redis:7", ""},
		{"registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9", ""},
		{"localhost/foo", "localhost/foo:latest", "localhost/foo:latest", ""},
		{"localhost:5000/foo/bar:v1", "localhost:5000/foo/bar:v1", "localhost:5000/foo/bar:v1", ""},
		{"127.0.0.1:5000/a/b/c", "127.0.0.1:5000/a/b/c:latest", "127.0.0.1:5000/a/b/c:latest", ""},
		{"[::1]:5000/foo", "[::1]:5000/foo:latest", "[::1]:5000/foo:latest", ""},
		{"Registry.Example.com/foo", "Registry.Example.com/foo:latest", "Registry.Example.com/foo:latest", ""},
		{"quay.io/a_b/c-d.e__f:T_1.2-x", "quay.io/a_b/c-d.e__f:T_1.2-x", "quay.io/a_b/c-d.e__f:T_1.2-x", ""},
		{"busybox@sha256:" + hexA, "docker.io/library/busybox@sha256:" + hexA, "", "docker.io/library/busybox@sha256:" + hexA},
		{"busybox:1.28@sha256:" + hexA, "docker.io/library/busybox:1.28@sha256:" + hexA,
			"docker.io/library/busybox:1.28", "docker.io/library/busybox@sha256:" + hexA},
		{"registry.k8s.io/pause:3.9@sha256:" + hexA, "registry.k8s.io/pause:3.9@sha256:" + hexA,
			"registry.k8s.io/pause:3.9", "registry.k8s.io/pause@sha256:" + hexA},
		{"abcdef123456", "docker.io/library/abcdef123456:latest", "docker.io/library/abcdef123456:latest", ""},
	} {
		ref, err := ParseReference(tc.in)
		if err != nil {
			t.Errorf("ParseReference(%q): %v", tc.in, err)
			continue
		}
		if ref.String() != tc.want || ref.TagRef() != tc.tagRef || ref.DigestRef() != tc.digestRef {
			t.Errorf("ParseReference(%q) = %q (tag %q, digest %q), want %q (%q, %q)",
				tc.in, ref.String(), ref.TagRef(), ref.DigestRef(), tc.want, tc.tagRef, tc.digestRef)
		}
	}
}

func TestParseReferenceInvalid(t *testing.T) {
	for _, tc := range []struct{ in, why string }{
		{"", "empty"},
		{" busybox", "white space"},
		{"Busybox", "lowercase"},
		{"docker.io/Library/busybox", "lowercase"},
		{"busybox:", "invalid tag"},
		{"busybox:-x", "invalid tag"},
		{"busybox:" + strings.Repeat("a", 129), "invalid tag"},
		{"busybox@sha256:abc", "invalid sha256"},
		{"busybox@md5:" + hexA[:32], "unsupported digest algorithm"},
		{"busybox@sha512:" + hexA + hexA, "unsupported digest algorithm"},
		{"busybox@", "invalid digest"},
		{":tag", "missing repository"},
		{"foo//bar", "path component"},
		{"foo/bar/", "path component"},
		{"foo/-bar", "path component"},
		{"foo/bar..baz", "path component"},
		{"-host.io/foo", "registry host"},
		{"host_name.io:5000/foo", "registry host"},
		{"host.io:port/foo", "registry host"},
		{hexA, "image ID"},
		{"sha256:" + hexA, "image ID"},
		{"a/" + strings.Repeat("b", 260), "longer than 255"},
	} {
		_, err := ParseReference(tc.in)
		if err == nil {
			t.Errorf("ParseReference(%q) succeeded, want error about %q", tc.in, tc.why)
			continue
		}
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParseReference(%q): %v is not InvalidArgument", tc.in, err)
		}
		if !strings.Contains(err.Error(), tc.why) || !strings.Contains(err.Error(), `"`+tc.in+`"`) {
			t.Errorf("ParseReference(%q) = %q, want the ref quoted and %q", tc.in, err, tc.why)
		}
	}
}

func TestInsecureHostPatterns(t *testing.T) {
	s := &Store{opts: Options{InsecureRegistries: []string{"127.0.0.1:*", "localhost:*", "*.corp.example", "reg.local"}}}
	for host, want := range map[string]bool{
		"127.0.0.1:5000":     true,
		"127.0.0.1":          false,
		"localhost:80":       true,
		"a.corp.example":     true,
		"a.b.corp.example":   false,
		"reg.local":          true,
		"reg.local:443":      false,
		"registry.k8s.io":    false,
		"127.0.0.10:5000":    false,
		"evil.127.0.0.1:500": false,
	} {
		if got := s.insecureHost(host); got != want {
			t.Errorf("insecureHost(%q) = %v, want %v", host, got, want)
		}
	}
}
