package image

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/crisp-runtime/crisp/errdefs"
)

const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerSchema1      = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSchema1JWS   = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

type manifestType int

const (
	kindUnknown manifestType = iota
	kindManifest
	kindIndex
	kindSchema1
)

func kindOfMediaType(mt string) manifestType {
	switch mt {
	case ocispec.MediaTypeImageManifest, mediaTypeDockerManifest:
		return kindManifest
	case ocispec.MediaTypeImageIndex, mediaTypeDockerManifestList:
		return kindIndex
	case mediaTypeDockerSchema1, mediaTypeDockerSchema1JWS:
		return kindSchema1
	}
	return kindUnknown
}

// manifestKind decides whether data is an image manifest or an index. The
// Content-Type and the document's own mediaType must agree when both are
// known: a document that claims to be one thing and parses as another is
// how confusion attacks on digests work.
func manifestKind(contentType string, data []byte) (manifestType, error) {
	var probe struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
		Layers        json.RawMessage `json:"layers"`
		Config        json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return kindUnknown, fmt.Errorf("unparsable manifest: %v", err)
	}
	body := kindOfMediaType(probe.MediaType)
	if body == kindUnknown {
		switch {
		case probe.SchemaVersion == 1:
			body = kindSchema1
		case probe.Manifests != nil && probe.Layers == nil:
			body = kindIndex
		case probe.Config != nil && probe.Layers != nil && probe.Manifests == nil:
			body = kindManifest
		}
	}
	header := kindOfMediaType(contentType)
	if header != kindUnknown && body != kindUnknown && header != body {
		return kindUnknown, fmt.Errorf("manifest served as %q but its content is %q", contentType, probe.MediaType)
	}
	kind := body
	if kind == kindUnknown {
		kind = header
	}
	switch kind {
	case kindSchema1:
		return kind, fmt.Errorf("docker schema 1 manifests are not supported, push the image with a current client: %w", errdefs.ErrUnimplemented)
	case kindUnknown:
		return kind, fmt.Errorf("unsupported manifest type %q: %w", contentType, errdefs.ErrUnimplemented)
	}
	return kind, nil
}

// selectPlatform picks the manifest for this node from an index:
// linux/GOARCH with the best variant the CPU runs.
func selectPlatform(data []byte) (ocispec.Descriptor, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("unparsable index: %v", err)
	}
	variants := hostVariants()
	best, bestScore := -1, 0
	var seen []string
	for i, d := range idx.Manifests {
		if k := kindOfMediaType(d.MediaType); k != kindManifest && k != kindIndex {
			continue // attestations, signatures, artifacts
		}
		if d.Platform == nil {
			continue
		}
		seen = append(seen, platformString(d.Platform))
		if score := platformScore(d.Platform, variants); score > bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		return ocispec.Descriptor{}, fmt.Errorf("no manifest for linux/%s (index has %s): %w",
			runtime.GOARCH, strings.Join(seen, ", "), errdefs.ErrNotFound)
	}
	if why := validateDigest(idx.Manifests[best].Digest.String()); why != "" {
		return ocispec.Descriptor{}, fmt.Errorf("index entry: %s", why)
	}
	return idx.Manifests[best], nil
}

func platformString(p *ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// platformScore is 0 for a platform this node cannot run, higher for better.
func platformScore(p *ocispec.Platform, variants []string) int {
	if p.OS != "linux" || p.Architecture != runtime.GOARCH {
		return 0
	}
	for i, v := range variants {
		if p.Variant == v {
			return len(variants) - i
		}
	}
	return 0
}

// hostVariants lists the variants this node runs, best first. An empty
// variant means the architecture's baseline, which is what containerd
// assumes too (v8 for arm64, v7 for arm).
func hostVariants() []string {
	switch runtime.GOARCH {
	case "arm64":
		return []string{"v8", ""}
	case "arm":
		switch goarm() {
		case "5":
			return []string{"v5"}
		case "6":
			return []string{"v6", "v5"}
		}
		return []string{"v7", "", "v6", "v5"}
	case "amd64":
		return []string{"", "v1"}
	}
	return []string{""}
}

// goarm is the GOARM the binary was built for: it runs on at least that.
func goarm() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "GOARM" {
				return strings.SplitN(s.Value, ",", 2)[0]
			}
		}
	}
	return "7"
}
