//go:build tools

// Package tools pins the Go command-line tools that hack/deps.sh builds into
// _output/bin. Importing the command packages here keeps `go mod tidy` from
// dropping them from go.mod; the versions are the ones in go.mod:
//
//   - sigs.k8s.io/cri-tools: crictl and critest (the CRI validation suite)
//   - github.com/onsi/ginkgo/v2: the ginkgo CLI, which critest runs itself
//     when it is given -parallel=N with N > 1
//   - github.com/google/go-containerregistry: crane
package tools

import (
	_ "github.com/google/go-containerregistry/cmd/crane"
	_ "github.com/onsi/ginkgo/v2/ginkgo"
	_ "sigs.k8s.io/cri-tools/cmd/crictl"
	_ "sigs.k8s.io/cri-tools/cmd/critest"
)
