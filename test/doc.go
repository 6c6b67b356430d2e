// Package test holds crisp's integration tests. They run the real daemon as
// root against real namespaces, cgroups, CNI plugins and the loopback registry
// that hack/images.sh fills, so they are behind the "integration" build tag:
//
//	make integration
package test
