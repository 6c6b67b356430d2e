package image

import (
	"regexp"
	"strings"

	"github.com/crisp-runtime/crisp/errdefs"
)

// Docker's defaults. crisp reports names the way docker and containerd do
// ("docker.io/library/busybox:latest"), never go-containerregistry's
// "index.docker.io", because kubelet compares these strings with pod specs.
const (
	dockerDomain       = "docker.io"
	legacyDockerDomain = "index.docker.io"
	officialRepoPrefix = "library/"
	defaultTag         = "latest"
	maxNameLength      = 255
)

// The grammar of github.com/distribution/reference, split so each failure
// can be reported precisely.
var (
	domainLabel    = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
	domainRE       = regexp.MustCompile(`^(?:` + domainLabel + `(?:\.` + domainLabel + `)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$`)
	pathComponent  = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)
	tagRE          = charRun{first: isWord, rest: isTagChar, min: 1, max: 128}      // ^[\w][\w.-]{0,127}$
	sha256HexRE    = charRun{first: isLowerHex, rest: isLowerHex, min: 64, max: 64} // ^[a-f0-9]{64}$
	hexPrefixRE    = charRun{first: isLowerHex, rest: isLowerHex, min: 12, max: 64} // ^[a-f0-9]{12,64}$
	anyDigestAlgRE = regexp.MustCompile(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`)
)

// charRun matches what a regexp `^[first][rest]{min-1,max-1}$` of ASCII
// classes does. Compiled, such counted repetitions cost about a millisecond
// of every start of the crisp binary, and libcontainer starts it for every
// exec (as the exec'd process's init).
type charRun struct {
	first, rest func(byte) bool
	min, max    int // length of the whole string
}

func (c charRun) MatchString(s string) bool {
	if len(s) < c.min || len(s) > c.max {
		return false
	}
	for i := 0; i < len(s); i++ {
		in := c.rest
		if i == 0 {
			in = c.first
		}
		if !in(s[i]) {
			return false
		}
	}
	return true
}

func isAlnum(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
}
func isWord(b byte) bool      { return isAlnum(b) || b == '_' }
func isTagChar(b byte) bool   { return isWord(b) || b == '.' || b == '-' }
func isLowerHex(b byte) bool  { return 'a' <= b && b <= 'f' || '0' <= b && b <= '9' }
func isOwnerChar(b byte) bool { return isAlnum(b) || b == '_' || b == '.' || b == '-' }

// Reference is a normalized image reference. Tag and Digest may both be set
// ("name:tag@sha256:..."): the digest decides what is pulled, the tag is
// recorded as well, as docker does.
type Reference struct {
	Domain string // registry host, "docker.io" for Docker Hub
	Path   string // repository path, "library/busybox"
	Tag    string // "" only when Digest is set
	Digest string // "sha256:<hex>" or ""
}

// Name is the repository without tag or digest: "docker.io/library/busybox".
func (r Reference) Name() string { return r.Domain + "/" + r.Path }

// TagRef is "name:tag", or "" when the reference has no tag.
func (r Reference) TagRef() string {
	if r.Tag == "" {
		return ""
	}
	return r.Name() + ":" + r.Tag
}

// DigestRef is "name@digest", or "" when the reference has no digest.
func (r Reference) DigestRef() string {
	if r.Digest == "" {
		return ""
	}
	return r.Name() + "@" + r.Digest
}

// String is the full normalized form.
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// ParseReference parses and normalizes an image reference like docker:
// default registry docker.io, "library/" for official images, tag "latest"
// when neither tag nor digest is given. Errors wrap errdefs.ErrInvalidArgument
// and quote the reference.
func ParseReference(s string) (Reference, error) {
	bad := func(why string) (Reference, error) {
		return Reference{}, errdefs.InvalidArgument("invalid image reference %q: %s", s, why)
	}
	if s == "" {
		return bad("empty")
	}
	if strings.TrimSpace(s) != s {
		return bad("leading or trailing white space")
	}
	var ref Reference
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		ref.Digest = rest[i+1:]
		rest = rest[:i]
		if err := validateDigest(ref.Digest); err != "" {
			return bad(err)
		}
	}
	// A ':' after the last '/' separates the tag; one before it is a port.
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i+1:], "/") {
		ref.Tag = rest[i+1:]
		rest = rest[:i]
		if !tagRE.MatchString(ref.Tag) {
			return bad("invalid tag " + quote(ref.Tag))
		}
	}
	if rest == "" {
		return bad("missing repository name")
	}
	if sha256HexRE.MatchString(rest) {
		return bad("a 64-character hexadecimal string is an image ID, not a repository name")
	}
	if rest == "sha256" && ref.Tag != "" && sha256HexRE.MatchString(ref.Tag) {
		return bad("an image ID cannot be pulled; use a repository name")
	}
	ref.Domain, ref.Path = splitDomain(rest)
	if !domainRE.MatchString(ref.Domain) {
		return bad("invalid registry host " + quote(ref.Domain))
	}
	if ref.Domain == legacyDockerDomain {
		ref.Domain = dockerDomain
	}
	if ref.Domain == dockerDomain && !strings.Contains(ref.Path, "/") {
		ref.Path = officialRepoPrefix + ref.Path
	}
	for _, c := range strings.Split(ref.Path, "/") {
		if pathComponent.MatchString(c) {
			continue
		}
		if pathComponent.MatchString(strings.ToLower(c)) {
			return bad("repository name must be lowercase")
		}
		return bad("invalid repository path component " + quote(c))
	}
	if len(ref.Name()) > maxNameLength {
		return bad("repository name longer than 255 characters")
	}
	if ref.Tag == "" && ref.Digest == "" {
		ref.Tag = defaultTag
	}
	return ref, nil
}

// splitDomain follows docker: the first component is a registry host only if
// it looks like one (has '.' or ':', is "localhost", or has upper case, which
// repository paths never do).
func splitDomain(name string) (domain, path string) {
	i := strings.IndexByte(name, '/')
	if i < 0 {
		return dockerDomain, name
	}
	first := name[:i]
	if !strings.ContainsAny(first, ".:") && first != "localhost" && strings.ToLower(first) == first {
		return dockerDomain, name
	}
	return first, name[i+1:]
}

// validateDigest returns why d is unusable, or "". Only sha256 is accepted
// because the store is addressed by sha256.
func validateDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	switch {
	case !ok || !anyDigestAlgRE.MatchString(d):
		return "invalid digest " + quote(d)
	case alg != "sha256":
		return "unsupported digest algorithm " + quote(alg) + " (only sha256)"
	case !sha256HexRE.MatchString(hex):
		return "invalid sha256 digest " + quote(d)
	}
	return ""
}

func quote(s string) string { return `"` + s + `"` }

// normalizeHost maps the ways Docker Hub is spelled in configuration and
// credentials to the one name references use.
func normalizeHost(h string) string {
	h = strings.ToLower(h)
	switch h {
	case legacyDockerDomain, "registry-1.docker.io", "registry.hub.docker.com":
		return dockerDomain
	}
	return h
}
