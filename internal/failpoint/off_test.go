//go:build !failpoint

package failpoint

import "testing"

// A production build ignores the variable: nothing can arm a failpoint.
func TestProductionIgnoresEnv(t *testing.T) {
	t.Setenv(EnvVar, "x/y=error")
	if err := Hit("x/y"); err != nil {
		t.Fatal(err)
	}
	if Env() != nil {
		t.Fatal("Env must be empty without failpoints")
	}
}
