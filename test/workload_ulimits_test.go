//go:build integration

package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/test/harness"
)

const ulimitsAnnotation = "crisp-runtime.io/ulimits"

// limitsOf parses /proc/<pid>/limits text into "Max locked memory" ->
// [soft, hard].
func limitsOf(text string) map[string][2]string {
	out := map[string][2]string{}
	for _, line := range strings.Split(text, "\n")[1:] {
		if len(line) < 47 {
			continue
		}
		f := strings.Fields(line[25:])
		if len(f) >= 2 {
			out[strings.TrimSpace(line[:25])] = [2]string{f[0], f[1]}
		}
	}
	return out
}

// memlockLimit is what the test configures: unlimited where the daemon may
// raise it (CAP_SYS_RESOURCE, as on a real node), else half and all of the
// hard limit it inherits, which it may always grant.
func memlockLimit(t *testing.T) (cfg string, soft, hard string) {
	c, err := capability.NewPid2(0)
	if err == nil && c.Load() == nil && c.Get(capability.EFFECTIVE, capability.CAP_SYS_RESOURCE) {
		return "memlock=-1:-1", "unlimited", "unlimited"
	}
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &r); err != nil {
		t.Fatal(err)
	}
	if r.Max == unix.RLIM_INFINITY {
		return "memlock=-1:-1", "unlimited", "unlimited"
	}
	h := r.Max &^ 4095
	return fmt.Sprintf("memlock=%d:%d", h/2, h), strconv.FormatUint(h/2, 10), strconv.FormatUint(h, 10)
}

// TestDefaultUlimits: default_ulimits reach the container's process and an
// exec in it; limits nobody configured are crisp's explicit baseline, not
// the daemon's (its stack soft limit is lowered here to tell them apart);
// the pod annotation overrides per pod; a bad annotation is refused.
func TestDefaultUlimits(t *testing.T) {
	harness.RequireRegistry(t)
	memlock, mlSoft, mlHard := memlockLimit(t)
	d := harness.Start(t, harness.WithArgs("--default-ulimits", memlock+",nofile=1000:2000"))
	if err := unix.Prlimit(d.PID(), unix.RLIMIT_STACK, &unix.Rlimit{Cur: 2 << 20, Max: unix.RLIM_INFINITY}, nil); err != nil {
		t.Fatalf("lower the daemon's stack limit: %v", err)
	}
	pull(t, d, ctrImage)
	pod, podCfg := ctrPod(t, d, "ulimits")
	cfg := ctrConfig("limits", "cat /proc/self/limits; echo ulimit-l=$(ulimit -l); sleep 3600")
	id := runCtr(t, d, pod, podCfg, cfg)

	var initOut string
	waitLog := func() bool {
		lines := readCRILog(t, logPathOf(podCfg, cfg))
		var b strings.Builder
		for _, l := range lines {
			b.WriteString(l.text + "\n")
		}
		initOut = b.String()
		return strings.Contains(initOut, "ulimit-l=")
	}
	for deadline := time.Now().Add(30 * time.Second); !waitLog() && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	exec := execSync(t, d, id, 30, "sh", "-c", "cat /proc/self/limits; echo ulimit-l=$(ulimit -l)")
	wantL := mlSoft
	if mlSoft != "unlimited" {
		n, _ := strconv.ParseUint(mlSoft, 10, 64)
		wantL = strconv.FormatUint(n/1024, 10)
	}
	for what, out := range map[string]string{"container": initOut, "exec": string(exec.Stdout)} {
		l := limitsOf(out)
		t.Logf("%s: memlock %v nofile %v stack %v nproc %v, %s", what, l["Max locked memory"], l["Max open files"], l["Max stack size"], l["Max processes"],
			strings.TrimSpace(out[strings.Index(out, "ulimit-l="):]))
		if got := l["Max locked memory"]; got != [2]string{mlSoft, mlHard} {
			t.Errorf("%s: memlock %v, want %s:%s", what, got, mlSoft, mlHard)
		}
		if got := l["Max open files"]; got != [2]string{"1000", "2000"} {
			t.Errorf("%s: nofile %v, want 1000:2000", what, got)
		}
		if got := l["Max stack size"]; got[0] != "8388608" {
			t.Errorf("%s: stack %v, want crisp's 8388608 soft, not the daemon's 2097152", what, got)
		}
		if !strings.Contains(out, "ulimit-l="+wantL+"\n") {
			t.Errorf("%s: ulimit -l: %q, want %s", what, out[strings.Index(out, "ulimit-l="):], wantL)
		}
	}

	// The annotation overrides nofile for this pod; memlock stays configured.
	podCfg2 := podConfig("ulimits-pod")
	podCfg2.LogDirectory = t.TempDir()
	podCfg2.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	podCfg2.Annotations[ulimitsAnnotation] = "nofile=500:1500"
	pod2 := runPod(t, d, podCfg2)
	id2 := runCtr(t, d, pod2, podCfg2, ctrConfig("idle", "sleep 3600"))
	l := limitsOf(string(execSync(t, d, id2, 30, "cat", "/proc/self/limits").Stdout))
	t.Logf("annotated pod, exec: nofile %v memlock %v", l["Max open files"], l["Max locked memory"])
	if l["Max open files"] != [2]string{"500", "1500"} || l["Max locked memory"] != [2]string{mlSoft, mlHard} {
		t.Errorf("annotated pod: nofile %v memlock %v", l["Max open files"], l["Max locked memory"])
	}

	bad := podConfig("ulimits-bad")
	bad.Annotations[ulimitsAnnotation] = "memlock=lots"
	_, err := d.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: bad})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), ulimitsAnnotation) {
		t.Errorf("bad annotation: %v, want InvalidArgument naming %s", err, ulimitsAnnotation)
	}
}

// TestDefaultUlimitsRefusedAtStartup: a bad or ungrantable default_ulimits
// entry stops start-up with a message naming the key.
func TestDefaultUlimitsRefusedAtStartup(t *testing.T) {
	dir := t.TempDir()
	for i, entry := range []string{"memlock", "nofile=10:5", "nofile=99999999999"} {
		p := filepath.Join(dir, fmt.Sprintf("%d.toml", i))
		if err := os.WriteFile(p, []byte(fmt.Sprintf("default_ulimits = [%q]\n", entry)), 0o644); err != nil {
			t.Fatal(err)
		}
		sub := filepath.Join(dir, strconv.Itoa(i))
		cmd := exec.Command(harness.Binary(t), "--config", p, "--root", filepath.Join(sub, "root"),
			"--state", filepath.Join(sub, "state"), "--listen", filepath.Join(sub, "crisp.sock"))
		out, err := cmd.CombinedOutput()
		t.Logf("default_ulimits = [%q]: %v: %s", entry, err, lastLine(string(out)))
		if err == nil || !strings.Contains(string(out), "default_ulimits") {
			t.Errorf("%s: crisp started or did not name the key: %v, output %q", entry, err, out)
		}
		if _, err := os.Stat(sub); !os.IsNotExist(err) {
			t.Errorf("%s: crisp made %s before refusing its configuration", entry, sub)
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
