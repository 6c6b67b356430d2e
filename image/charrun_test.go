package image

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// The hand-written matchers accept exactly what the regexps they replace
// accept.
func TestCharRunsMatchTheirRegexps(t *testing.T) {
	for _, tc := range []struct {
		m  charRun
		re string
	}{
		{ownerRE, `^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$`},
		{tagRE, `^[\w][\w.-]{0,127}$`},
		{sha256HexRE, `^[a-f0-9]{64}$`},
		{hexPrefixRE, `^[a-f0-9]{12,64}$`},
	} {
		re := regexp.MustCompile(tc.re)
		alphabet := "aAfFgz09_.-:/\n é"
		rng := rand.New(rand.NewPCG(1, 2))
		inputs := []string{"", "a", strings.Repeat("a", 64), strings.Repeat("a", 65), strings.Repeat("0", 12), strings.Repeat("b", 11),
			strings.Repeat("x", 128), strings.Repeat("x", 129), strings.Repeat("x", 255), strings.Repeat("x", 256), "_a", ".a", "-a", "a\n"}
		for i := 0; i < 20000; i++ {
			n := rng.IntN(300)
			if rng.IntN(2) == 0 {
				n = rng.IntN(70)
			}
			var b strings.Builder
			for j := 0; j < n; j++ {
				if rng.IntN(4) == 0 {
					b.WriteByte(alphabet[rng.IntN(len(alphabet))])
				} else {
					b.WriteByte("abcdef0123456789"[rng.IntN(16)])
				}
			}
			inputs = append(inputs, b.String())
		}
		for _, s := range inputs {
			if got, want := tc.m.MatchString(s), re.MatchString(s); got != want {
				t.Fatalf("%s on %q: %v, regexp says %v", tc.re, s, got, want)
			}
		}
	}
}
