package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The data-science scenarios use the images of hack/images-datascience.sh:
// Debian bookworm + python3-numpy (3 layers, ~100 MB compressed) and its
// variant of over 1 GiB (scipy, pandas and a layer of incompressible
// "model weights").

// dsPull pulls both images cold, interleaved, and records the daemon's
// peak RSS during each pull of the big one (VmHWM, reset before the pull by
// writing 5 to clear_refs).
func (b *bench) dsPull(ctx context.Context) {
	peak := map[string]float64{}
	for i := 0; i < b.o.dsPullIters; i++ {
		b.interleave(i, func(r *runtime) {
			b.res.add("20a PullImage numpy ~100 MB, 3 layers (cold)", r.name, b.pullCold(ctx, r, b.o.dsImage))
		})
		b.interleave(i, func(r *runtime) {
			if r.pid > 0 {
				must(os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", r.pid), []byte("5"), 0))
			}
			b.res.add("20b PullImage numpy-1g > 1 GiB, 5 layers (cold)", r.name, b.pullCold(ctx, r, b.o.dsBigImage))
			if r.pid > 0 {
				peak[r.name] = max(peak[r.name], procKiB(r.pid, "status", "VmHWM")/1024)
			}
		})
	}
	for name, v := range peak {
		b.res.set("20c daemon peak RSS during the 1 GiB pulls", "Mi", name, v)
	}
}

// pullCold removes ref, pulls it and removes it again (the stores hold no
// layer of it before the next pull); it returns the pull's duration.
func (b *bench) pullCold(ctx context.Context, r *runtime, ref string) time.Duration {
	spec := &runtimeapi.ImageSpec{Image: ref}
	_, _ = r.img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: spec})
	t := time.Now()
	_, err := r.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: spec})
	must(err)
	d := time.Since(t)
	_, err = r.img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: spec})
	must(err)
	return d
}

// pythonStart times a pod with one python3 container from RunPodSandbox
// until the container's first line is in its CRI log. The log is what the
// runtime itself writes (crisp's monitor, containerd's CRI plugin) and is
// polled every millisecond; no exec is involved, so the time is the pod's
// and the interpreter's start only.
func (b *bench) pythonStart(ctx context.Context) {
	for _, r := range b.rts {
		_, err := r.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: b.o.dsImage}})
		must(err)
	}
	const marker = "crisp-bench: python is running"
	for i := 0; i < b.o.iterations; i++ {
		b.interleave(i, func(r *runtime) {
			t := time.Now()
			pod, cfg := b.runPod(ctx, r)
			c := b.ctrConfig("py")
			c.Image = &runtimeapi.ImageSpec{Image: b.o.dsImage}
			c.Command = []string{"python3", "-c", fmt.Sprintf("print(%q, flush=True)", marker)}
			cr, err := r.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: c, SandboxConfig: cfg})
			must(err)
			_, err = r.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId})
			must(err)
			log := filepath.Join(cfg.LogDirectory, c.LogPath)
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
				if data, _ := os.ReadFile(log); strings.Contains(string(data), marker) {
					break
				}
				if time.Now().After(deadline) {
					fatalf("%s: no %q in %s after a minute", r.name, marker, log)
				}
			}
			b.res.add("21 RunPodSandbox → first line of python3 -c", r.name, time.Since(t))
			removePod(ctx, r, pod)
		})
	}
}
