package spec

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// BenchmarkGenerate is a typical kubelet container: image user by name,
// a few mounts and env, resources, with and without RuntimeDefault seccomp.
func BenchmarkGenerate(b *testing.B) {
	for _, seccomp := range []bool{false, true} {
		name := "unconfined"
		if seccomp {
			name = "runtime-default"
		}
		b.Run(name, func(b *testing.B) {
			in := baseInput(b)
			in.Image.User = "app"
			in.Image.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
			in.Config.Envs = []*runtimeapi.KeyValue{{Key: "POD_IP", Value: []byte("10.0.0.2")}}
			in.Config.Mounts = []*runtimeapi.Mount{
				{ContainerPath: "/var/run/secrets/kubernetes.io/serviceaccount", HostPath: b.TempDir(), Readonly: true},
				{ContainerPath: "/dev/termination-log", HostPath: in.Pod.HostsPath},
			}
			in.Config.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuShares: 102, CpuPeriod: 100000, CpuQuota: 50000, MemoryLimitInBytes: 128 << 20, OomScoreAdj: 999}
			if seccomp {
				sc(&in).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Generate(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRuntimeDefaultProfile is the moby profile conversion alone
// (building the profile, filtering by caps, kernel version and arch).
func BenchmarkRuntimeDefaultProfile(b *testing.B) {
	in := baseInput(b)
	s, _, err := Generate(in)
	if err != nil {
		b.Fatal(err)
	}
	for _, compat := range []bool{false, true} {
		name := "native"
		if compat {
			name = "all-arches"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := runtimeDefaultSeccomp(s, compat); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
