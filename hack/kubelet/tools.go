//go:build tools

// Package kubelet pins the kubelet that hack/e2e-kubelet.sh runs against crisp.
package kubelet

import (
	_ "k8s.io/kubernetes/cmd/kubelet"
)
