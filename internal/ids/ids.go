// Package ids makes and resolves the 64-hex ids of pods and containers.
package ids

import (
	"crypto/rand"
	"encoding/hex"
	"iter"
	"strings"
)

// New returns a random 256-bit id in hex, the form kubelet and crictl expect.
func New() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on Linux
	return hex.EncodeToString(b[:])
}

// Resolve finds the one id equal to, or else uniquely prefixed by, prefix, as
// crictl users type them. ok is false when nothing matches or, with
// ambiguous set, when more than one id does.
func Resolve(all iter.Seq[string], prefix string) (id string, ok, ambiguous bool) {
	n := 0
	for cand := range all {
		if cand == prefix {
			return cand, true, false
		}
		if strings.HasPrefix(cand, prefix) {
			id = cand
			n++
		}
	}
	switch n {
	case 0:
		return "", false, false
	case 1:
		return id, true, false
	}
	return "", false, true
}
