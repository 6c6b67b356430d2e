//go:build !failpoint

package failpoint

// Hit does nothing: this binary was built without failpoints.
func Hit(string) error { return nil }

// Env is the environment that arms the same failpoints in a child process:
// none without failpoints.
func Env() []string { return nil }
