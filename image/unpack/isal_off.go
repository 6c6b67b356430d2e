//go:build !isal

package unpack

import "io"

// Built without ISA-L's header (no isal build tag): always the Go inflater.
func newISALReader(io.Reader) io.ReadCloser { return nil }

// Inflater names the gzip decoder layers are inflated with, and whether it
// is ISA-L.
func Inflater() (string, bool) { return goInflater, false }

// ISALFix says how to get ISA-L when Inflater is not it.
const ISALFix = "build with make build (go build -tags isal, needs libisal-dev) and install libisal2"
