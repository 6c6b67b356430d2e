package main

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// rootfsAnnotation asks crisp for a native root (a private copy of the
// image in a plain directory, README "Root filesystem speed"); named here
// so that crisp-bench stays a plain CRI client.
const rootfsAnnotation = "crisp-runtime.io/rootfs"

// smallfileNative (scenario smallfile-native, crisp only) runs the
// small-file workload of the smallfile scenario in a crisp container with
// a native root, in one with an overlay root and on the host beside each,
// in rotating order, and reports both containers as % of the host run
// beside them in the same round (rows R1, and R2 for the overlay). Then it times
// what the copy costs: CreateContainer with an overlay and with a native
// root, alternately, for busybox (R3) and the numpy image (R4), and the
// import of numpy in each (R5), warm.
func (b *bench) smallfileNative(ctx context.Context) {
	if b.o.smallfileBinary == "" || b.o.smallfileHostDir == "" {
		fatalf("the smallfile-native scenario needs -smallfile-binary (a static crisp-bench) and -smallfile-host-dir")
	}
	var r *runtime
	for _, rt := range b.rts {
		if rt.name == "crisp" {
			r = rt
		}
	}
	if r == nil {
		b.res.note("smallfile-native: no runtime named crisp; skipped")
		return
	}
	kinds := []string{"native", "overlay"}
	pods, cfgs, ids := map[string]string{}, map[string]*runtimeapi.PodSandboxConfig{}, map[string]string{}
	for _, kind := range kinds {
		pods[kind], cfgs[kind] = b.rootfsPod(ctx, r, kind)
		c := b.ctrConfig("smallfile")
		c.Mounts = []*runtimeapi.Mount{{HostPath: b.o.smallfileBinary, ContainerPath: smallfileInContainer, Readonly: true}}
		resp, err := r.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pods[kind], Config: c, SandboxConfig: cfgs[kind]})
		must(err)
		_, err = r.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId})
		must(err)
		ids[kind] = resp.ContainerId
	}
	// Each container's host run beside its root, so that ext4 places
	// both in the same block group (see smallfileHostDir): the overlay's
	// beside its upper directory, the native root's beside the copy, in
	// the container's fs directory (crisp's layout: <root>/containers/
	// <id>/fs/{upper,native-<id>}), which crisp marks chattr +T as it
	// does for the copy.
	hostDirs := map[string]string{"overlay": b.smallfileHostDir(ctx, r, ids["overlay"])}
	must(os.MkdirAll(hostDirs["overlay"], 0o755))
	fsDir := filepath.Dir(hostDirs["overlay"])
	if filepath.Base(fsDir) != "fs" {
		fatalf("smallfile-native: %s is not beside an overlay's upper directory in crisp's layout", hostDirs["overlay"])
	}
	nativeHost, err := os.MkdirTemp(filepath.Join(filepath.Dir(filepath.Dir(fsDir)), ids["native"], "fs"), "smallfile-host-")
	must(err)
	hostDirs["native"] = nativeHost
	ratios := map[string]map[string][]float64{"native": {}, "overlay": {}}
	for i := 0; i < b.o.iterations; i++ {
		ctr, host := map[string]smallfileRun{}, map[string]smallfileRun{}
		var steps []func()
		for _, kind := range kinds {
			steps = append(steps,
				func() { ctr[kind] = b.smallfileInCtr(ctx, r, ids[kind]) },
				func() { host[kind] = b.smallfileOnHost(hostDirs[kind]) })
		}
		for k := range steps {
			steps[(i+k)%len(steps)]()
		}
		for _, kind := range kinds {
			for row, v := range smallfileRows(ctr[kind], host[kind]) {
				ratios[kind][row] = append(ratios[kind][row], v)
			}
		}
	}
	var rows []string
	for row := range ratios["native"] {
		rows = append(rows, row)
	}
	sort.Strings(rows)
	for _, kind := range kinds {
		for _, row := range rows {
			// "9a small files in root: create, % of host (CPU)" becomes
			// "R1a small files, crisp native root: create, % of host (CPU)".
			letter, rest, _ := strings.Cut(strings.TrimPrefix(row, "9"), " small files in root")
			prefix := map[string]string{"native": "R1", "overlay": "R2"}[kind]
			b.res.set(prefix+letter+" small files, crisp "+kind+" root"+rest, "%", r.name, percentile(ratios[kind][row], 50))
		}
	}
	b.res.note("smallfile-native: %d × 4 KiB, %d rounds of native root, host beside it, overlay root, host beside its upper dir, in rotating order; R1 native, R2 overlay (same rounds), %% of the host run beside it in the round, median", b.o.smallfiles, b.o.iterations)
	for _, d := range hostDirs {
		must(os.RemoveAll(d))
	}
	for _, kind := range kinds {
		_, err := r.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ids[kind], Cmd: []string{"sh", "-c", "rm -rf /smallfile-*"}, Timeout: 300})
		must(err)
	}

	// What the copy costs at CreateContainer.
	b.createCost(ctx, r, pods, cfgs, "R3", "busybox", b.o.image, b.o.iterations, nil)
	if _, err := r.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: b.o.dsImage}}); err != nil {
		b.res.note("smallfile-native: %s not pullable (hack/images-datascience.sh builds it): %v; no R4/R5 rows", b.o.dsImage, err)
	} else {
		b.createCost(ctx, r, pods, cfgs, "R4", "numpy", b.o.dsImage, min(b.o.iterations, 5), func(kind, id string) {
			for range 3 {
				t := time.Now()
				resp, err := r.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"python3", "-c", "import numpy"}, Timeout: 120})
				must(err)
				if resp.ExitCode != 0 {
					fatalf("import numpy in a %s root: exit %d: %s", kind, resp.ExitCode, resp.Stderr)
				}
				b.res.add("R5 ExecSync python3 -c 'import numpy', "+kind+" root", r.name, time.Since(t))
			}
		})
	}
	for _, kind := range kinds {
		removePod(ctx, r, pods[kind])
	}
}

// rootfsPod runs a crisp pod whose containers get roots of kind.
func (b *bench) rootfsPod(ctx context.Context, r *runtime, kind string) (string, *runtimeapi.PodSandboxConfig) {
	cfg := b.podConfig(r)
	cfg.Annotations = map[string]string{rootfsAnnotation: kind}
	resp, err := r.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	must(err)
	return resp.PodSandboxId, cfg
}

// createCost times CreateContainer of img in the native and the overlay
// pod, alternately, n times each; each container is started (and run,
// when given) and removed before the next.
func (b *bench) createCost(ctx context.Context, r *runtime, pods map[string]string, cfgs map[string]*runtimeapi.PodSandboxConfig, row, name, img string, n int, run func(kind, id string)) {
	kinds := []string{"overlay", "native"}
	for i := 0; i < n; i++ {
		for k := range kinds {
			kind := kinds[(i+k)%len(kinds)]
			c := b.ctrConfig("cost")
			c.Image = &runtimeapi.ImageSpec{Image: img}
			t := time.Now()
			resp, err := r.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pods[kind], Config: c, SandboxConfig: cfgs[kind]})
			must(err)
			b.res.add(row+" CreateContainer "+name+", "+kind+" root", r.name, time.Since(t))
			if run != nil {
				_, err = r.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId})
				must(err)
				run(kind, resp.ContainerId)
			}
			t = time.Now()
			_, err = r.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: resp.ContainerId})
			must(err)
			_, err = r.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: resp.ContainerId})
			must(err)
			b.res.add(row+" StopContainer + RemoveContainer "+name+", "+kind+" root", r.name, time.Since(t))
		}
	}
}
