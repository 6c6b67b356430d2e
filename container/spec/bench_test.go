package spec

import (
	"testing"
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
			in.Config.Envs = []KeyValue{{Key: "POD_IP", Value: "10.0.0.2"}}
			in.Config.Mounts = []Mount{
				{ContainerPath: "/var/run/secrets/kubernetes.io/serviceaccount", HostPath: b.TempDir(), Readonly: true},
				{ContainerPath: "/dev/termination-log", HostPath: in.Pod.HostsPath},
			}
			in.Config.Resources = &Resources{CPUShares: 102, CPUPeriod: 100000, CPUQuota: 50000, MemoryLimit: 128 << 20, OOMScoreAdj: 999}
			if seccomp {
				sc(&in).Seccomp = &SecurityProfile{Type: ProfileRuntimeDefault}
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
