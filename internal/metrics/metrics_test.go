package metrics

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestExitReasonsCollapseToTheCRIOnes(t *testing.T) {
	before := Read("crisp_container_exits_total", "reason", ReasonError)
	ContainerExited("")
	ContainerExited("Signaled")
	if got := Read("crisp_container_exits_total", "reason", ReasonError) - before; got != 2 {
		t.Fatalf("unknown reasons count as Error: got %v more, want 2", got)
	}
}

func TestFailedPullsHaveNoDuration(t *testing.T) {
	n := Read("crisp_image_pull_duration_seconds")
	f := Read("crisp_image_pulls_total", "result", "failure")
	ImagePulled(errors.New("no"), time.Second)
	if Read("crisp_image_pull_duration_seconds") != n || Read("crisp_image_pulls_total", "result", "failure") != f+1 {
		t.Fatal("a failed pull is counted as failure and not timed")
	}
}

// TestServe scrapes a served endpoint: the state gauges come from the
// Source at scrape time, and a Source error drops only its own series.
func TestServe(t *testing.T) {
	pods := 2
	if err := RegisterSource(Source{
		Pods:            func() map[string]int { return map[string]int{"ready": pods} },
		Containers:      func() map[string]int { return map[string]int{"running": 1} },
		Monitors:        func() int { return 1 },
		ImageStoreBytes: func() (uint64, error) { return 0, errors.New("disk gone") },
	}); err != nil {
		t.Fatal(err)
	}
	defer Registry.Unregister(stateCollector{})
	addr, stop, err := Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if _, _, err := Serve(addr); err == nil {
		t.Fatal("a port in use must fail at start-up")
	}
	scrape := func() string {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("scrape: %d %v", resp.StatusCode, err)
		}
		return string(b)
	}
	body := scrape()
	for _, want := range []string{`crisp_pods{state="ready"} 2`, `crisp_containers{state="running"} 1`, "crisp_monitors_running 1", "go_goroutines ", "process_resident_memory_bytes "} {
		if !strings.Contains(body, want+"") {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(body, "crisp_image_store_bytes") {
		t.Error("a failing source must drop its series, not report a value")
	}
	pods = 5
	if !strings.Contains(scrape(), `crisp_pods{state="ready"} 5`) {
		t.Fatal("pods gauge is not computed at scrape time")
	}
	if Read("crisp_pods", "state", "ready") != 5 {
		t.Fatal("Read disagrees with the scrape")
	}
}
