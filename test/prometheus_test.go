//go:build integration

package test

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/testutil"
	"github.com/crisp-runtime/crisp/test/harness"
)

// series maps one scrape's series, written as Prometheus prints them
// (labels in name order), to their values.
type series map[string]float64

func scrape(t *testing.T, addr string) series {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d", resp.StatusCode)
	}
	s := series{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape: bad line %q", line)
		}
		s[line[:i]] = v
	}
	return s
}

// get fails the test when a series is missing: a metric that silently
// disappeared reads as 0 otherwise.
func (s series) get(t *testing.T, name string) float64 {
	t.Helper()
	v, ok := s[name]
	if !ok {
		t.Fatalf("no series %s in the scrape", name)
	}
	return v
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestPrometheusMetrics scrapes a daemon's /metrics while it does real
// work and checks that each metric moves by what was done: a pull by the
// image's size, each exit under its reason, a pod start by one CNI ADD, a
// restart by the pods and containers it recovered.
func TestPrometheusMetrics(t *testing.T) {
	harness.RequireRegistry(t)
	pn := harness.PodNetwork(t)
	addr := freeAddr(t)
	d := harness.Start(t, harness.WithCNI(pn.ConfDir), harness.WithArgs("--metrics-address", addr))

	m0 := scrape(t, addr)
	for _, name := range []string{`crisp_pods{state="ready"}`, `crisp_containers{state="running"}`, "crisp_monitors_running", "crisp_image_store_bytes"} {
		if v := m0.get(t, name); v != 0 {
			t.Errorf("a fresh daemon has %s %v", name, v)
		}
	}
	if m0.get(t, "go_goroutines") == 0 || m0.get(t, "process_resident_memory_bytes") == 0 {
		t.Error("the Go runtime and process collectors report nothing")
	}

	pull(t, d, busybox)
	size := float64(imageStatus(t, d, busybox).GetSize())
	m1 := scrape(t, addr)
	// A series labelled by method and code appears with its first request.
	delta := func(m, prev series, name string) float64 { t.Helper(); return m.get(t, name) - prev[name] }
	if got := delta(m1, m0, "crisp_image_pull_bytes_total"); got != size {
		t.Errorf("a pull of a %v-byte image raised crisp_image_pull_bytes_total by %v", size, got)
	}
	if got := delta(m1, m0, `crisp_image_pulls_total{result="success"}`); got != 1 {
		t.Errorf("successful pulls +%v, want 1", got)
	}
	if got := delta(m1, m0, "crisp_image_pull_duration_seconds_count"); got != 1 {
		t.Errorf("pull durations observed +%v, want 1", got)
	}
	if got := delta(m1, m0, "crisp_image_layers_unpacked_total"); got < 1 {
		t.Errorf("layers unpacked +%v", got)
	}
	if got := m1.get(t, "crisp_image_store_bytes"); got < size {
		t.Errorf("image store %v bytes after pulling a %v-byte image", got, size)
	}
	if got := delta(m1, m0, `crisp_cri_requests_total{code="OK",method="PullImage"}`); got != 1 {
		t.Errorf("PullImage OK requests +%v, want 1", got)
	}
	if got := m1.get(t, `crisp_cri_request_duration_seconds_count{code="OK",method="PullImage"}`); got != 1 {
		t.Errorf("PullImage latency observations %v, want 1", got)
	}

	_, err := d.Images.PullImage(harness.Ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "registry.k8s.io/crisp-test/absent:1"}})
	if err == nil {
		t.Fatal("pulling an absent image succeeded")
	}
	m2 := scrape(t, addr)
	if got := m2.get(t, `crisp_cri_requests_total{code="NotFound",method="PullImage"}`); got != 1 {
		t.Errorf("PullImage NotFound requests %v, want 1 (err %v)", got, err)
	}
	if got := delta(m2, m1, `crisp_image_pulls_total{result="failure"}`); got != 1 {
		t.Errorf("failed pulls +%v, want 1", got)
	}

	podCfg := podConfig("metrics")
	podCfg.LogDirectory = t.TempDir()
	pod := runPod(t, d, podCfg)
	m3 := scrape(t, addr)
	if got := delta(m3, m2, `crisp_cni_operation_duration_seconds_count{operation="ADD"}`); got != 1 {
		t.Errorf("CNI ADDs +%v for one pod, want 1", got)
	}
	if got := m3.get(t, `crisp_pods{state="ready"}`); got != 1 {
		t.Errorf("ready pods %v, want 1", got)
	}

	hog := ctrConfig("hog", "exec dd if=/dev/zero of=/dev/null bs=200M count=1")
	hog.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 32 << 20}
	exited := map[string]string{
		runCtr(t, d, pod, podCfg, hog):                           "OOMKilled",
		runCtr(t, d, pod, podCfg, ctrConfig("done", "true")):     "Completed",
		runCtr(t, d, pod, podCfg, ctrConfig("failed", "exit 3")): "Error",
	}
	runCtr(t, d, pod, podCfg, ctrConfig("sleeper", "exec sleep 1000"))
	for id, reason := range exited {
		if st := waitExited(t, d, id, time.Minute); st.Reason != reason {
			t.Fatalf("container %s exited with %q, want %q", id, st.Reason, reason)
		}
	}
	m4 := scrape(t, addr)
	for _, reason := range []string{"OOMKilled", "Completed", "Error"} {
		if got := delta(m4, m3, `crisp_container_exits_total{reason="`+reason+`"}`); got != 1 {
			t.Errorf("exits with reason %s +%v, want 1", reason, got)
		}
	}
	if got := delta(m4, m3, "crisp_container_starts_total"); got != 4 {
		t.Errorf("container starts +%v, want 4", got)
	}
	if r, e := m4.get(t, `crisp_containers{state="running"}`), m4.get(t, `crisp_containers{state="exited"}`); r != 1 || e != 3 {
		t.Errorf("containers running %v exited %v, want 1 and 3", r, e)
	}
	if got := m4.get(t, "crisp_monitors_running"); got != 1 {
		t.Errorf("%v monitors alive, want 1 (the running container's)", got)
	}

	// A new process starts its counters at zero and counts what it recovered.
	d.Kill9AndRestart(t)
	m5 := scrape(t, addr)
	if got := m5.get(t, `crisp_recovery_objects_total{object="pod",outcome="recovered"}`); got != 1 {
		t.Errorf("pods recovered %v, want 1", got)
	}
	if got := m5.get(t, `crisp_recovery_objects_total{object="container",outcome="recovered"}`); got != 4 {
		t.Errorf("containers recovered %v, want 4", got)
	}
	if got := m5.get(t, "crisp_monitors_running"); got != 1 {
		t.Errorf("%v monitors alive after the restart, want 1", got)
	}

	stopPod(t, d, pod)
	m6 := scrape(t, addr)
	if got := m6.get(t, `crisp_cni_operation_duration_seconds_count{operation="DEL"}`); got < 1 {
		t.Errorf("CNI DELs %v after stopping a networked pod", got)
	}
	if got := m6.get(t, `crisp_cni_operation_errors_total{operation="DEL"}`); got != 0 {
		t.Errorf("CNI DEL errors %v", got)
	}
	testutil.WaitFor(t, "the stopped pod's monitors to be gone", time.Minute, func() bool {
		return scrape(t, addr).get(t, "crisp_monitors_running") == 0
	})
	t.Logf("after a pull and a pod start: %d series; bytes pulled %v, image store %v bytes", len(m4), m1.get(t, "crisp_image_pull_bytes_total"), m4.get(t, "crisp_image_store_bytes"))
}
