package image

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/crisp-runtime/crisp/config"
	"github.com/crisp-runtime/crisp/errdefs"
)

// deadURL is an http:// URL on 127.0.0.1 where nothing listens.
func deadURL(t *testing.T) string {
	srv := httptest.NewServer(nil)
	u := srv.URL
	srv.Close()
	return u
}

func TestMirrorFallbackKeepsUpstreamName(t *testing.T) {
	reg := newTestRegistry(t)
	img := testImage(t, 2)
	reg.push("cache/k8s/pause:3.9", img)
	reg.push("library/busybox:1.28", img)
	s := newTestStore(t, t.TempDir(), func(o *Options) {
		o.Registries = map[string]config.Registry{
			// SkipUpstream: the tests have no internet.
			"registry.k8s.io": {Mirrors: []string{deadURL(t), "http://" + reg.host + "/cache/k8s/"}, SkipUpstream: true},
			"docker.io":       {Mirrors: []string{"http://" + reg.host}, SkipUpstream: true},
		}
	})
	got, err := s.Pull(context.Background(), "registry.k8s.io/pause:3.9", nil)
	if err != nil {
		t.Fatal(err)
	}
	md := mustDigest(t, img)
	if !slices.Equal(got.RepoTags, []string{"registry.k8s.io/pause:3.9"}) ||
		!slices.Equal(got.RepoDigests, []string{"registry.k8s.io/pause@" + md}) {
		t.Errorf("pulled via mirror as %v %v, want the upstream name", got.RepoTags, got.RepoDigests)
	}
	got, err = s.Pull(context.Background(), "busybox:1.28", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.RepoTags, []string{"registry.k8s.io/pause:3.9", "docker.io/library/busybox:1.28"}) {
		t.Errorf("RepoTags = %v", got.RepoTags)
	}
	if g, err := s.Get("busybox:1.28"); err != nil || g.ID != got.ID {
		t.Errorf("Get(busybox:1.28) = %v, %v", g, err)
	}
}

func TestPullErrorCodes(t *testing.T) {
	reg := newTestRegistry(t)
	reg.push("present:1", testImage(t, 1))
	dead1, dead2 := deadURL(t), deadURL(t)
	s := newTestStore(t, t.TempDir(), func(o *Options) {
		o.Registries = map[string]config.Registry{
			"registry.k8s.io": {Mirrors: []string{"http://" + reg.host}, SkipUpstream: true},
			"down.example":    {Mirrors: []string{dead1, dead2}, SkipUpstream: true},
			"mixed.example":   {Mirrors: []string{dead1, "http://" + reg.host}, SkipUpstream: true},
		}
	})
	for _, tc := range []struct {
		ref      string
		want     error
		contains []string
	}{
		{"registry.k8s.io/missing:1", errdefs.ErrNotFound,
			[]string{`image "registry.k8s.io/missing:1" not found in registry.k8s.io (tried http://` + reg.host + ")"}},
		{"registry.k8s.io/present:nope", errdefs.ErrNotFound, nil},
		{"down.example/x:1", errdefs.ErrUnavailable, []string{"down.example", dead1, dead2, "connection refused"}},
		{"mixed.example/present:1", nil, nil}, // first mirror down, second serves
		{"mixed.example/missing:1", errdefs.ErrUnavailable, []string{dead1}},
		{"127.0.0.1:1/x:1", errdefs.ErrUnavailable, []string{"127.0.0.1:1"}},
	} {
		_, err := s.Pull(context.Background(), tc.ref, nil)
		if tc.want == nil {
			if err != nil {
				t.Errorf("Pull(%s): %v", tc.ref, err)
			}
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("Pull(%s) = %v, want %v", tc.ref, err, tc.want)
			continue
		}
		for _, c := range tc.contains {
			if !strings.Contains(err.Error(), c) {
				t.Errorf("Pull(%s) = %q, want it to mention %q", tc.ref, err, c)
			}
		}
	}
}

// An upstream host that is not insecure must not be spoken to over HTTP,
// even on loopback where go-containerregistry would fall back to it.
func TestUpstreamPlainHTTPRefused(t *testing.T) {
	reg := newTestRegistry(t)
	reg.push("x:1", testImage(t, 1))
	s := newTestStore(t, t.TempDir(), func(o *Options) { o.InsecureRegistries = nil })
	_, err := s.Pull(context.Background(), reg.host+"/x:1", nil)
	if err == nil || !strings.Contains(err.Error(), "plain HTTP") {
		t.Fatalf("pull over HTTP from a secure registry: %v", err)
	}
	// Registries[host].Insecure allows it.
	s2 := newTestStore(t, t.TempDir(), func(o *Options) {
		o.InsecureRegistries = nil
		o.Registries = map[string]config.Registry{reg.host: {Insecure: true}}
	})
	if _, err := s2.Pull(context.Background(), reg.host+"/x:1", nil); err != nil {
		t.Fatal(err)
	}
}

func TestHTTPSMirrorWithCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(registry.New())
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	// Push through the test server's own trusted client.
	pushTLS(t, srv, host+"/pause:3.9")

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	mirror := map[string]config.Registry{"registry.k8s.io": {Mirrors: []string{"https://" + host}, SkipUpstream: true}}
	s := newTestStore(t, t.TempDir(), func(o *Options) { o.Registries = mirror; o.InsecureRegistries = nil })
	if _, err := s.Pull(context.Background(), "registry.k8s.io/pause:3.9", nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("pull from an untrusted TLS mirror: %v", err)
	}

	withCA := map[string]config.Registry{"registry.k8s.io": {Mirrors: []string{"https://" + host}, SkipUpstream: true, CAFile: caFile}}
	s2 := newTestStore(t, t.TempDir(), func(o *Options) { o.Registries = withCA; o.InsecureRegistries = nil })
	got, err := s2.Pull(context.Background(), "registry.k8s.io/pause:3.9", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.RepoTags, []string{"registry.k8s.io/pause:3.9"}) {
		t.Errorf("RepoTags = %v", got.RepoTags)
	}
}

func TestAuthenticatorFor(t *testing.T) {
	creds := &Auth{Username: "u", Password: "p"}
	withSrv := func(srv string) *Auth { a := *creds; a.ServerAddress = srv; return &a }
	for _, tc := range []struct {
		auth             *Auth
		upstream, host   string
		mirror, withCred bool
	}{
		{creds, "docker.io", "index.docker.io", false, true},
		{creds, "registry.k8s.io", "mirror.local", true, true}, // no ServerAddress: every endpoint, like containerd
		{withSrv("https://index.docker.io/v1/"), "docker.io", "index.docker.io", false, true},
		{withSrv("docker.io"), "docker.io", "mirror.local:5000", true, false},
		{withSrv("mirror.local:5000"), "docker.io", "mirror.local:5000", true, true},
		{withSrv("other.io"), "registry.k8s.io", "registry.k8s.io", false, false},
		{nil, "docker.io", "index.docker.io", false, false},
	} {
		a, err := authenticatorFor(tc.auth, tc.upstream, tc.host, tc.mirror)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := a.Authorization()
		if got := cfg.Username == "u"; got != tc.withCred {
			t.Errorf("authenticatorFor(%+v, %s, %s, mirror=%v) sends credentials: %v, want %v", tc.auth, tc.upstream, tc.host, tc.mirror, got, tc.withCred)
		}
	}
}

// TestStalledMirrorFallsThrough: a mirror that stops sending mid-layer is
// abandoned and the next one serves the layer.
func TestStalledMirrorFallsThrough(t *testing.T) {
	stalled, good := newTestRegistry(t), newTestRegistry(t)
	img := testImage(t, 2)
	stalled.push("pause:3.9", img)
	good.push("pause:3.9", img)
	d := layerDigest(t, img, 0)
	stalled.setStall(d, true)
	s := newTestStore(t, t.TempDir(), func(o *Options) {
		o.ProgressTimeout = 300 * time.Millisecond
		o.Registries = map[string]config.Registry{
			"registry.k8s.io": {Mirrors: []string{"http://" + stalled.host, "http://" + good.host}, SkipUpstream: true},
		}
	})
	if _, err := s.Pull(context.Background(), "registry.k8s.io/pause:3.9", nil); err != nil {
		t.Fatalf("pull with a stalling first mirror: %v", err)
	}
	if good.gets(d) != 1 {
		t.Errorf("the second mirror served the stalled layer %d times, want 1", good.gets(d))
	}
}
