package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// smallfileInContainer is where the workload's binary is bound in the
// containers.
const smallfileInContainer = "/crisp-bench"

// smallfileScenario runs the small-file workload (-smallfile) in each
// runtime's container root, its overlayfs, and on the host in a directory
// beside the container's writable layer, seconds apart,
// alternating which goes first; each sample is the container's rate as a
// share of the host run next to it, and the rows are their medians as % of
// native, by the workload thread's CPU time (what the filesystem code
// costs; stable on a loaded machine) and by wall time.
func (b *bench) smallfileScenario(ctx context.Context) {
	if b.o.smallfileBinary == "" || b.o.smallfileHostDir == "" {
		fatalf("the smallfile scenario needs -smallfile-binary (a static crisp-bench) and -smallfile-host-dir")
	}
	ids, pods := map[string]string{}, map[string]string{}
	for _, r := range b.rts {
		pod, cfg := b.runPod(ctx, r)
		c := b.ctrConfig("smallfile")
		c.Mounts = []*runtimeapi.Mount{{HostPath: b.o.smallfileBinary, ContainerPath: smallfileInContainer, Readonly: true}}
		resp, err := r.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: c, SandboxConfig: cfg})
		must(err)
		_, err = r.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId})
		must(err)
		pods[r.name], ids[r.name] = pod, resp.ContainerId
	}
	hostDirs := map[string]string{}
	for _, r := range b.rts {
		hostDirs[r.name] = b.smallfileHostDir(ctx, r, ids[r.name])
		must(os.MkdirAll(hostDirs[r.name], 0o755))
	}
	ratios := map[string]map[string][]float64{} // runtime -> row -> container/host
	for i := 0; i < b.o.iterations; i++ {
		b.interleave(i, func(r *runtime) {
			var ctr, host smallfileRun
			inCtr := func() { ctr = b.smallfileInCtr(ctx, r, ids[r.name]) }
			onHost := func() { host = b.smallfileOnHost(hostDirs[r.name]) }
			if i%2 == 0 {
				inCtr()
				onHost()
			} else {
				onHost()
				inCtr()
			}
			if ratios[r.name] == nil {
				ratios[r.name] = map[string][]float64{}
			}
			for row, v := range smallfileRows(ctr, host) {
				ratios[r.name][row] = append(ratios[r.name][row], v)
			}
		})
	}
	rows := make([]string, 0, len(smallfileRows(smallfileRun{}, smallfileRun{})))
	for row := range smallfileRows(smallfileRun{}, smallfileRun{}) {
		rows = append(rows, row)
	}
	sort.Strings(rows)
	for _, row := range rows {
		for _, r := range b.rts {
			b.res.set(row, "%", r.name, percentile(ratios[r.name][row], 50))
		}
	}
	b.res.note("small files: %d × 4 KiB, %d interleaved runs per runtime; %% of native = container root (overlayfs) / host directory on the same filesystem, median", b.o.smallfiles, b.o.iterations)
	for _, r := range b.rts {
		must(os.RemoveAll(hostDirs[r.name]))
		// Gone before the pod: containerd deletes a snapshot in the
		// background, and run.sh's du of its store must not meet a
		// tree of 100,000 files vanishing under it.
		resp, err := r.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ids[r.name], Cmd: []string{"sh", "-c", "rm -rf /smallfile-*"}, Timeout: 300})
		must(err)
		if resp.ExitCode != 0 {
			fatalf("%s: removing the small files: exit %d: %s", r.name, resp.ExitCode, resp.Stderr)
		}
		removePod(ctx, r, pods[r.name])
	}
	must(os.RemoveAll(b.o.smallfileHostDir))
}

// smallfileHostDir is where the host runs next to the container's: beside
// the container's writable layer (its overlay's upperdir, from the
// container's own mountinfo), so that ext4 places both runs' new
// directories in the same block group. Apart, the creates compared how
// recently other tenants deleted inodes in two different groups (ext4
// without a journal skips those for a minute): up to 2x either way.
// Without an upperdir in sight, -smallfile-host-dir.
func (b *bench) smallfileHostDir(ctx context.Context, r *runtime, id string) string {
	resp, err := r.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"cat", "/proc/self/mountinfo"}, Timeout: 30})
	must(err)
	for _, line := range strings.Split(string(resp.Stdout), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[4] != "/" {
			continue
		}
		for _, opt := range strings.Split(f[len(f)-1], ",") {
			if up, ok := strings.CutPrefix(opt, "upperdir="); ok {
				return filepath.Join(filepath.Dir(up), "smallfile-host")
			}
		}
	}
	b.res.note("%s: no upperdir in the container's mountinfo; the host runs in %s", r.name, b.o.smallfileHostDir)
	return filepath.Join(b.o.smallfileHostDir, r.name)
}

// smallfileRows are the container's rates in % of the host's.
func smallfileRows(ctr, host smallfileRun) map[string]float64 {
	pct := func(a, b float64) float64 { return 100 * a / b }
	return map[string]float64{
		"9a small files in root: create, % of host (CPU)":     pct(ctr.CPU.Create, host.CPU.Create),
		"9b small files in root: stat, % of host (CPU)":       pct(ctr.CPU.Stat, host.CPU.Stat),
		"9c small files in root: open+read, % of host (CPU)":  pct(ctr.CPU.Read, host.CPU.Read),
		"9d small files in root: create, % of host (wall)":    pct(ctr.Wall.Create, host.Wall.Create),
		"9e small files in root: stat, % of host (wall)":      pct(ctr.Wall.Stat, host.Wall.Stat),
		"9f small files in root: open+read, % of host (wall)": pct(ctr.Wall.Read, host.Wall.Read),
	}
}

func (b *bench) smallfileInCtr(ctx context.Context, r *runtime, id string) smallfileRun {
	resp, err := r.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Timeout: 300,
		Cmd: []string{smallfileInContainer, "-smallfile", "/", "-smallfile-n", fmt.Sprint(b.o.smallfiles)}})
	must(err)
	if resp.ExitCode != 0 {
		fatalf("%s: small-file workload in the container exited %d: %s", r.name, resp.ExitCode, resp.Stderr)
	}
	var run smallfileRun
	must(json.Unmarshal(resp.Stdout, &run))
	return run
}

func (b *bench) smallfileOnHost(dir string) smallfileRun {
	out, err := exec.Command(b.o.smallfileBinary, "-smallfile", dir, "-smallfile-n", fmt.Sprint(b.o.smallfiles)).Output()
	must(err)
	var run smallfileRun
	must(json.Unmarshal(out, &run))
	return run
}
