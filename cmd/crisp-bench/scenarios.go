package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type bench struct {
	o   options
	rts []*runtime
	res *results
	seq atomic.Int64
	// phaseLogs are the -v=4 logs whose Phases lines are collected per
	// scenario.
	phaseLogs []*phaseLog
}

func (b *bench) run(ctx context.Context) {
	steps := []struct {
		name string
		fn   func(context.Context)
	}{
		{"pod", b.podLifecycle},
		{"container", b.containerLifecycle},
		{"full", b.fullSequential},
		{"parallel", b.fullParallel},
		{"exec", b.execSync},
		{"pull", b.coldPull},
		{"pull-ds", b.dsPull},
		{"python", b.pythonStart},
		{"memory", b.memory}, // also times List* with its pods present
		{"node", b.node},
		{"smallfile", b.smallfileScenario},
		{"smallfile-native", b.smallfileNative},
	}
	for _, s := range steps {
		if b.o.scenarios[s.name] || (s.name == "memory" && b.o.scenarios["list"]) {
			fmt.Fprintf(os.Stderr, "crisp-bench: %s\n", s.name)
			for _, pl := range b.phaseLogs {
				pl.mark()
			}
			s.fn(ctx)
			for _, pl := range b.phaseLogs {
				b.res.Phases = append(b.res.Phases, pl.collect(s.name)...)
			}
		}
	}
}

// interleave runs fn once per runtime, alternating which goes first, so
// that slow drift (another tenant's build, page cache) is shared.
func (b *bench) interleave(i int, fn func(r *runtime)) {
	for k := range b.rts {
		fn(b.rts[(i+k)%len(b.rts)])
	}
}

func seccomp() *runtimeapi.SecurityProfile {
	return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
}

// kubeletNamespaces is what kubelet sends for a pod without hostNetwork or
// shareProcessNamespace: the pod's network and IPC, a PID namespace per
// container.
func kubeletNamespaces() *runtimeapi.NamespaceOption {
	return &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}
}

func (b *bench) podConfig(r *runtime) *runtimeapi.PodSandboxConfig {
	n := b.seq.Add(1)
	name := fmt.Sprintf("bench-%d-%d", os.Getpid(), n)
	dir := filepath.Join(r.logDir, name)
	must(os.MkdirAll(dir, 0o755))
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Uid: name, Namespace: "bench"},
		Hostname:     name,
		LogDirectory: dir,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent:    fmt.Sprintf("%s-%s/%s", b.o.cgroup, r.name, name),
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{Seccomp: seccomp(), NamespaceOptions: kubeletNamespaces()},
		},
	}
}

func (b *bench) ctrConfig(name string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: b.o.image},
		Command:  []string{"sleep", "3600"},
		LogPath:  name + ".log",
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{Seccomp: seccomp(), NamespaceOptions: kubeletNamespaces()},
		},
	}
}

// runPod returns once RunPodSandbox has answered and the pod reports READY.
func (b *bench) runPod(ctx context.Context, r *runtime) (string, *runtimeapi.PodSandboxConfig) {
	cfg := b.podConfig(r)
	resp, err := r.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	must(err)
	st, err := r.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: resp.PodSandboxId})
	must(err)
	if st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		fatalf("%s: pod %s is %s after RunPodSandbox", r.name, resp.PodSandboxId, st.Status.State)
	}
	return resp.PodSandboxId, cfg
}

func (b *bench) startCtr(ctx context.Context, r *runtime, pod string, cfg *runtimeapi.PodSandboxConfig, name string) string {
	c, err := r.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: b.ctrConfig(name), SandboxConfig: cfg})
	must(err)
	_, err = r.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId})
	must(err)
	return c.ContainerId
}

func removePod(ctx context.Context, r *runtime, pod string) {
	_, err := r.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod})
	must(err)
	_, err = r.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod})
	must(err)
}

func (b *bench) podLifecycle(ctx context.Context) {
	for i := 0; i < b.o.iterations; i++ {
		b.interleave(i, func(r *runtime) {
			t := time.Now()
			pod, _ := b.runPod(ctx, r)
			b.res.add("1a RunPodSandbox → ready", r.name, time.Since(t))
			t = time.Now()
			removePod(ctx, r, pod)
			b.res.add("1b StopPodSandbox + RemovePodSandbox", r.name, time.Since(t))
		})
	}
}

func (b *bench) containerLifecycle(ctx context.Context) {
	pods := map[string]string{}
	cfgs := map[string]*runtimeapi.PodSandboxConfig{}
	for _, r := range b.rts {
		pods[r.name], cfgs[r.name] = b.runPod(ctx, r)
	}
	for i := 0; i < b.o.iterations; i++ {
		b.interleave(i, func(r *runtime) {
			t := time.Now()
			id := b.startCtr(ctx, r, pods[r.name], cfgs[r.name], fmt.Sprintf("c%d", i))
			b.res.add("2a CreateContainer + StartContainer", r.name, time.Since(t))
			t = time.Now()
			_, err := r.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 0})
			must(err)
			_, err = r.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id})
			must(err)
			b.res.add("2b StopContainer + RemoveContainer", r.name, time.Since(t))
		})
	}
	for _, r := range b.rts {
		removePod(ctx, r, pods[r.name])
	}
}

func (b *bench) fullSequential(ctx context.Context) {
	for i := 0; i < b.o.iterations; i++ {
		b.interleave(i, func(r *runtime) {
			t := time.Now()
			pod, cfg := b.runPod(ctx, r)
			b.startCtr(ctx, r, pod, cfg, "app")
			b.res.add("3a pod + container → running", r.name, time.Since(t))
			t = time.Now()
			removePod(ctx, r, pod)
			b.res.add("3b stop + remove pod with container", r.name, time.Since(t))
		})
	}
}

// fullParallel starts o.parallel pods at once; each sample is one pod's
// latency, and the wall time of the whole batch is a sample of its own.
func (b *bench) fullParallel(ctx context.Context) {
	rounds := max(1, b.o.iterations/b.o.parallel)
	for i := 0; i < rounds; i++ {
		b.interleave(i, func(r *runtime) {
			var wg sync.WaitGroup
			pods := make([]string, b.o.parallel)
			t0 := time.Now()
			for k := range pods {
				wg.Add(1)
				go func() {
					defer wg.Done()
					t := time.Now()
					pod, cfg := b.runPod(ctx, r)
					b.startCtr(ctx, r, pod, cfg, "app")
					b.res.add(fmt.Sprintf("3c pod + container, %d in parallel (each)", b.o.parallel), r.name, time.Since(t))
					pods[k] = pod
				}()
			}
			wg.Wait()
			b.res.add(fmt.Sprintf("3d %d pods + containers in parallel (all)", b.o.parallel), r.name, time.Since(t0))
			for _, p := range pods {
				removePod(ctx, r, p)
			}
		})
	}
}

func (b *bench) execSync(ctx context.Context) {
	ids := map[string]string{}
	pods := map[string]string{}
	for _, r := range b.rts {
		pod, cfg := b.runPod(ctx, r)
		pods[r.name], ids[r.name] = pod, b.startCtr(ctx, r, pod, cfg, "exec")
	}
	for i := 0; i < b.o.iterations*3; i++ {
		b.interleave(i, func(r *runtime) {
			t := time.Now()
			resp, err := r.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ids[r.name], Cmd: []string{"true"}, Timeout: 10})
			must(err)
			if resp.ExitCode != 0 {
				fatalf("%s: exec true exited %d: %s", r.name, resp.ExitCode, resp.Stderr)
			}
			b.res.add("4 ExecSync true", r.name, time.Since(t))
		})
	}
	for _, r := range b.rts {
		removePod(ctx, r, pods[r.name])
	}
}

// coldPull removes the image after every pull. Both runtimes delete layers
// that no image references anymore as part of RemoveImage (containerd's CRI
// plugin deletes the image synchronously, which runs its content and
// snapshot garbage collection); hack/bench/run.sh checks that the stores
// shrink back.
func (b *bench) coldPull(ctx context.Context) {
	for i := 0; i < b.o.pullIters; i++ {
		b.interleave(i, func(r *runtime) {
			spec := &runtimeapi.ImageSpec{Image: b.o.bigImage}
			_, _ = r.img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: spec})
			t := time.Now()
			_, err := r.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: spec})
			must(err)
			b.res.add("5 PullImage big (cold)", r.name, time.Since(t))
			t = time.Now()
			_, err = r.img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: spec})
			must(err)
			b.res.add("5b RemoveImage big", r.name, time.Since(t))
		})
	}
}
