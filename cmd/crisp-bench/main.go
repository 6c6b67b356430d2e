// crisp-bench runs the same CRI workload against several runtimes at once,
// interleaving them per iteration so that noise on a shared machine hits all
// of them alike, and reports latency percentiles, the ratio of the first
// runtime to the second, and memory use. hack/bench/run.sh starts crisp and
// containerd on private roots and calls it; see README "Benchmarks".
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runtime is one CRI endpoint under test.
type runtime struct {
	name   string
	rt     runtimeapi.RuntimeServiceClient
	img    runtimeapi.ImageServiceClient
	pid    int    // daemon PID, for RSS
	exe    string // path prefix of the runtime's per-pod processes that are not the daemon's children
	logDir string
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	iterations  int
	parallel    int
	pullIters   int
	dsPullIters int
	dsImage     string
	dsBigImage  string
	memPods     int
	cycles      int
	listCount   int
	image       string
	bigImage    string
	scenarios   map[string]bool
	logRoot     string
	cgroup      string
	smallfiles  int
	// smallfileBinary is a static crisp-bench to bind into containers;
	// smallfileHostDir is on the filesystem of the runtimes' roots.
	smallfileBinary, smallfileHostDir string
}

func main() {
	var endpoints, pids, exes, phaseLogs listFlag
	var o options
	var only, jsonOut, pngOut, critestDirs, smallfileDir string
	flag.Var(&endpoints, "endpoint", "NAME=unix:///path.sock, repeated; the first is the numerator of the ratio")
	flag.Var(&pids, "pid", "NAME=PID of the runtime's daemon (for RSS)")
	flag.Var(&exes, "exe", "NAME=/path/prefix: per-pod processes whose executable starts with this belong to NAME even when not the daemon's children (for PSS)")
	flag.Var(&phaseLogs, "phase-log", "NAME=/path/to/log of a crisp at -v=4: print the steps of its start-path RPCs per scenario")
	flag.IntVar(&o.iterations, "iterations", 30, "iterations of each latency scenario per runtime")
	flag.IntVar(&o.parallel, "parallel", 8, "pods started at once in the parallel scenario")
	flag.IntVar(&o.pullIters, "pull-iterations", 10, "cold pulls of the big image per runtime")
	flag.IntVar(&o.dsPullIters, "ds-pull-iterations", 3, "cold pulls of each data-science image per runtime (pull-ds)")
	flag.StringVar(&o.dsImage, "ds-image", "docker.io/crisp-test/python-numpy:bookworm", "data-science image, ~100 MB (pull-ds, python; hack/images-datascience.sh)")
	flag.StringVar(&o.dsBigImage, "ds-big-image", "docker.io/crisp-test/python-numpy:bookworm-1g", "data-science image over 1 GiB (pull-ds)")
	flag.IntVar(&o.memPods, "mem-pods", 20, "running pods for the per-pod memory measurement")
	flag.IntVar(&o.cycles, "cycles", 500, "pod run/stop/remove cycles before the leak check")
	flag.IntVar(&o.listCount, "list-containers", 100, "containers present while timing List*")
	flag.StringVar(&o.image, "image", "docker.io/library/busybox:1.36", "container image")
	flag.StringVar(&o.bigImage, "big-image", "127.0.0.1:5000/crisp-test/big:1", "image for the cold-pull scenario")
	flag.StringVar(&only, "scenarios", "pod,container,full,parallel,exec,pull,pull-ds,python,memory,list,node,smallfile,smallfile-native", "scenarios to run, comma-separated")
	flag.StringVar(&o.cgroup, "cgroup-parent", "/crisp-bench", "pods get cgroup parent <this>-<runtime>/<pod> (cgroupfs)")
	flag.StringVar(&o.logRoot, "log-dir", "/tmp/crisp-bench-logs", "pod log directories")
	flag.StringVar(&jsonOut, "json", "", "write every sample and summary as JSON here")
	flag.StringVar(&pngOut, "png", "", "write a box plot of the latency distributions here")
	flag.StringVar(&critestDirs, "critest-summary", "", "DIR-crisp,DIR-containerd: only summarize critest -benchmark output directories")
	flag.StringVar(&smallfileDir, "smallfile", "", "only run the small-file workload in a new directory under this one and print its rates as JSON")
	flag.IntVar(&o.smallfiles, "smallfile-n", 20000, "files of the small-file workload")
	flag.StringVar(&o.smallfileBinary, "smallfile-binary", "", "smallfile scenario: a static crisp-bench (CGO_ENABLED=0) to run in the containers and on the host")
	flag.StringVar(&o.smallfileHostDir, "smallfile-host-dir", "", "smallfile scenario: host directory on the filesystem of the runtimes' roots, for a runtime whose containers do not show their upperdir (created and removed)")
	smallfileExisting := flag.Bool("smallfile-existing", false, "with -smallfile: the directory already holds the files; only stat and read them")
	flag.Parse()
	if smallfileDir != "" {
		smallfileMain(smallfileDir, o.smallfiles, *smallfileExisting)
		return
	}
	if critestDirs != "" {
		must(critestSummary(strings.Split(critestDirs, ",")))
		return
	}
	if len(endpoints) == 0 {
		fatalf("at least one -endpoint NAME=unix:///path is required")
	}
	o.scenarios = map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		o.scenarios[strings.TrimSpace(s)] = true
	}

	var rts []*runtime
	for _, e := range endpoints {
		name, addr, ok := strings.Cut(e, "=")
		if !ok {
			fatalf("-endpoint %q: want NAME=unix:///path", e)
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			fatalf("%s: %v", name, err)
		}
		r := &runtime{name: name, rt: runtimeapi.NewRuntimeServiceClient(conn), img: runtimeapi.NewImageServiceClient(conn),
			logDir: o.logRoot + "/" + name}
		r.pid = atoiOr(lookup(pids, name), 0)
		r.exe = lookup(exes, name)
		rts = append(rts, r)
	}

	ctx := context.Background()
	res := &results{Started: time.Now(), Runtimes: names(rts), Samples: map[string]map[string][]float64{}, Values: map[string]map[string]float64{}}
	for _, r := range rts {
		must(os.MkdirAll(r.logDir, 0o755))
		v, err := r.rt.Version(ctx, &runtimeapi.VersionRequest{})
		must(err)
		res.Versions = append(res.Versions, fmt.Sprintf("%s: %s %s", r.name, v.RuntimeName, v.RuntimeVersion))
		_, err = r.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: o.image}})
		must(err)
	}
	b := &bench{o: o, rts: rts, res: res}
	for _, pl := range phaseLogs {
		name, path, ok := strings.Cut(pl, "=")
		if !ok {
			fatalf("-phase-log %q: want NAME=/path/to/log", pl)
		}
		b.phaseLogs = append(b.phaseLogs, &phaseLog{runtime: name, path: path})
	}
	b.run(ctx)
	res.Finished = time.Now()

	res.printTable(os.Stdout)
	if jsonOut != "" {
		data, err := json.MarshalIndent(res, "", "  ")
		must(err)
		must(os.WriteFile(jsonOut, data, 0o644))
	}
	if pngOut != "" {
		must(writeBoxPlot(pngOut, res))
	}
}

func lookup(kvs []string, name string) string {
	for _, kv := range kvs {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

func atoiOr(s string, def int) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		return def
	}
	return n
}

func names(rts []*runtime) []string {
	var n []string
	for _, r := range rts {
		n = append(n, r.name)
	}
	return n
}

func must(err error) {
	if err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "crisp-bench: "+format+"\n", args...)
	os.Exit(1)
}
