package image

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/crisp-runtime/crisp/config"
	"github.com/crisp-runtime/crisp/errdefs"
)

// Auth carries the CRI AuthConfig of a pull.
type Auth struct {
	Username, Password, Auth, IdentityToken, RegistryToken, ServerAddress string
}

// endpoint is one place the bytes of an upstream repository can come from:
// a mirror or the upstream registry itself.
type endpoint struct {
	display string // "http://127.0.0.1:5000" for messages
	repo    name.Repository
	puller  *remote.Puller

	// Blobs are fetched with crisp's own requests (ranges, see download)
	// through a transport that authenticates as the puller does.
	base http.RoundTripper
	auth authn.Authenticator
	mu   sync.Mutex
	blob *http.Client
}

// blobClient returns the endpoint's authenticated client for blob GETs,
// made on first use (a ping and, for token auth, a token for pull scope).
func (ep *endpoint) blobClient(ctx context.Context) (*http.Client, error) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.blob != nil {
		return ep.blob, nil
	}
	rt, err := transport.NewWithContext(ctx, ep.repo.Registry, ep.auth, transport.NewUserAgent(ep.base, "crisp"),
		[]string{ep.repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	ep.blob = &http.Client{Transport: rt}
	return ep.blob, nil
}

// blobURL is where the endpoint serves a blob of its repository.
func (ep *endpoint) blobURL(digest string) string {
	return fmt.Sprintf("%s://%s/v2/%s/blobs/%s", ep.repo.Scheme(), ep.repo.RegistryStr(), ep.repo.RepositoryStr(), digest)
}

// transportKey identifies an http.Transport configuration; endpoints with the
// same TLS settings share one so keep-alive connections are reused.
type transportKey struct {
	caFile        string
	skipTLSVerify bool
}

// transports caches one http.Transport per TLS configuration for the life of
// the store.
type transports struct {
	mu sync.Mutex
	m  map[transportKey]*http.Transport
}

func (t *transports) get(k transportKey) (*http.Transport, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr, ok := t.m[k]; ok {
		return tr, nil
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: k.skipTLSVerify} //nolint:gosec // only for hosts configured insecure
	if k.caFile != "" {
		pem, err := os.ReadFile(k.caFile)
		if err != nil {
			return nil, errdefs.FailedPrecondition("registry CA file: %v", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errdefs.FailedPrecondition("registry CA file %s: no PEM certificates", k.caFile)
		}
		tlsConf.RootCAs = pool
	}
	// The dial, TLS and header timeouts catch dead hosts quickly so the next
	// mirror is tried; the body has no deadline because layers can be large
	// and slow, and the pull's context bounds it.
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		ForceAttemptHTTP2:     true,
	}
	if t.m == nil {
		t.m = map[transportKey]*http.Transport{}
	}
	t.m[k] = tr
	return tr, nil
}

func (t *transports) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tr := range t.m {
		tr.CloseIdleConnections()
	}
}

// schemeGuard enforces the configured scheme for one registry host.
// go-containerregistry probes https and then http for loopback and RFC 1918
// hosts on its own; without this an "https://" mirror could be silently
// downgraded, and an "http://" mirror would cost a failed TLS handshake.
type schemeGuard struct {
	base      http.RoundTripper
	host      string
	allowHTTP bool
	allowTLS  bool
}

func (g *schemeGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	// Token realms and blob redirects (CDNs) live on other hosts: those are
	// governed by the registry's own URLs, not by crisp's configuration.
	if req.URL.Host == g.host {
		if req.URL.Scheme == "http" && !g.allowHTTP {
			return nil, fmt.Errorf("plain HTTP to %s is not allowed (not an insecure registry)", g.host)
		}
		if req.URL.Scheme == "https" && !g.allowTLS {
			return nil, fmt.Errorf("%s is configured as an http:// endpoint", g.host)
		}
	}
	return g.base.RoundTrip(req)
}

// registryConfig finds the configuration of an upstream host, accepting the
// Docker Hub aliases as keys.
func (s *Store) registryConfig(host string) config.Registry {
	if r, ok := s.opts.Registries[host]; ok {
		return r
	}
	for k, r := range s.opts.Registries {
		if normalizeHost(k) == normalizeHost(host) {
			return r
		}
	}
	return config.Registry{}
}

// insecureHost reports whether host matches an InsecureRegistries pattern,
// where "*" matches any port or host label.
func (s *Store) insecureHost(host string) bool {
	for _, p := range s.opts.InsecureRegistries {
		if ok, _ := path.Match(strings.ReplaceAll(p, ".", "/"), strings.ReplaceAll(host, ".", "/")); ok {
			return true
		}
	}
	return false
}

// endpoints lists where ref's repository is fetched from, in order: mirrors,
// then the upstream host unless SkipUpstream.
func (s *Store) endpoints(ref Reference, auth *Auth) ([]*endpoint, error) {
	rc := s.registryConfig(ref.Domain)
	var eps []*endpoint
	for _, m := range rc.Mirrors {
		u, err := url.Parse(m)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errdefs.FailedPrecondition("registry %s: mirror %q: want an http:// or https:// URL", ref.Domain, m)
		}
		repoPath := ref.Path
		if p := strings.Trim(u.Path, "/"); p != "" {
			repoPath = p + "/" + ref.Path
		}
		ep, err := s.newEndpoint(ref, auth, endpointSpec{
			host: u.Host, repoPath: repoPath, mirror: true,
			allowHTTP: u.Scheme == "http", allowTLS: u.Scheme == "https",
			key: transportKey{caFile: rc.CAFile, skipTLSVerify: u.Scheme == "https" && s.insecureHost(u.Host)},
		})
		if err != nil {
			return nil, err
		}
		ep.display = u.Scheme + "://" + u.Host + strings.TrimSuffix(u.Path, "/")
		eps = append(eps, ep)
	}
	if !rc.SkipUpstream || len(eps) == 0 {
		insecure := rc.Insecure || s.insecureHost(ref.Domain)
		ep, err := s.newEndpoint(ref, auth, endpointSpec{
			host: ref.Domain, repoPath: ref.Path, allowHTTP: insecure, allowTLS: true,
			key: transportKey{caFile: rc.CAFile, skipTLSVerify: insecure},
		})
		if err != nil {
			return nil, err
		}
		// An insecure upstream may answer on either scheme, so name it bare.
		ep.display = ep.repo.RegistryStr()
		if !insecure {
			ep.display = "https://" + ep.display
		}
		eps = append(eps, ep)
	}
	return eps, nil
}

type endpointSpec struct {
	host, repoPath      string
	mirror              bool
	allowHTTP, allowTLS bool
	key                 transportKey
}

func (s *Store) newEndpoint(ref Reference, auth *Auth, spec endpointSpec) (*endpoint, error) {
	var nopts []name.Option
	if spec.allowHTTP {
		nopts = append(nopts, name.Insecure)
	}
	repo, err := name.NewRepository(spec.host+"/"+spec.repoPath, nopts...)
	if err != nil {
		return nil, errdefs.InvalidArgument("image %q on %s: %v", ref.String(), spec.host, err)
	}
	base, err := s.transports.get(spec.key)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", ref.Domain, err)
	}
	// ggcr talks to "index.docker.io" for Docker Hub; guard the host it will
	// actually use.
	guard := &schemeGuard{base: base, host: repo.RegistryStr(), allowHTTP: spec.allowHTTP, allowTLS: spec.allowTLS}
	authenticator, err := authenticatorFor(auth, ref.Domain, spec.host, spec.mirror)
	if err != nil {
		return nil, err
	}
	p, err := remote.NewPuller(
		remote.WithTransport(guard),
		remote.WithAuth(authenticator),
		remote.WithUserAgent("crisp"),
		// kubelet retries failed pulls with its own back-off, and a long
		// retry here delays falling back to the next endpoint.
		remote.WithRetryBackoff(remote.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 2}),
	)
	if err != nil {
		return nil, err
	}
	return &endpoint{repo: repo, puller: p, base: guard, auth: authenticator}, nil
}

// authenticatorFor decides which credentials an endpoint receives. Like
// containerd, credentials without a ServerAddress go to every endpoint of the
// pull (mirrors included); with a ServerAddress they go only to that host (or
// to the upstream host when ServerAddress names it), so kubelet's per-registry
// secrets never leak to an unrelated mirror.
func authenticatorFor(a *Auth, upstream, host string, mirror bool) (authn.Authenticator, error) {
	if a == nil || (a.Username == "" && a.Password == "" && a.Auth == "" && a.IdentityToken == "" && a.RegistryToken == "") {
		return authn.Anonymous, nil
	}
	if a.ServerAddress != "" {
		srv := a.ServerAddress
		if u, err := url.Parse(srv); err == nil && u.Host != "" {
			srv = u.Host
		} else {
			srv, _, _ = strings.Cut(srv, "/")
		}
		srv = normalizeHost(srv)
		if srv != normalizeHost(host) && (mirror || srv != normalizeHost(upstream)) {
			return authn.Anonymous, nil
		}
	}
	cfg := authn.AuthConfig{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
	if a.Auth != "" && cfg.Username == "" {
		// Decode here rather than passing it through so a malformed value is
		// an argument error, not an obscure 401 from the registry.
		raw, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil {
			return nil, errdefs.InvalidArgument("auth: malformed base64 %q field", "auth")
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return nil, errdefs.InvalidArgument("auth: %q field is not base64 of user:password", "auth")
		}
		cfg.Username, cfg.Password = user, pass
	}
	return authn.FromConfig(cfg), nil
}
