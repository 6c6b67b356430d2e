//go:build failpoint

package failpoint

import "testing"

func TestParseAndError(t *testing.T) {
	m := parse(" a/b=kill, c/d=error,junk,")
	if len(m) != 2 || m["a/b"] != "kill" || m["c/d"] != "error" {
		t.Fatalf("parse: %v", m)
	}
	armed = map[string]string{"x/y": "error"}
	defer func() { armed = nil }()
	if err := Hit("x/y"); err == nil || err.Error() != "failpoint x/y" {
		t.Fatalf("armed error: %v", err)
	}
	if err := Hit("x/y"); err != nil {
		t.Fatalf("fired twice: %v", err)
	}
	if err := Hit("other"); err != nil {
		t.Fatalf("unarmed: %v", err)
	}
}
