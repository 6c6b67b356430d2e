//go:build integration

package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/testutil"
	"github.com/crisp-runtime/crisp/test/harness"
)

func TestVersionAndRuntimeConfig(t *testing.T) {
	d := harness.Start(t)
	v, err := d.Runtime.Version(harness.Ctx(t), &runtimeapi.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != "crisp" || v.RuntimeApiVersion != "v1" || v.RuntimeVersion == "" {
		t.Fatalf("unexpected version: %+v", v)
	}
	rc, err := d.Runtime.RuntimeConfig(harness.Ctx(t), &runtimeapi.RuntimeConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rc.GetLinux().GetCgroupDriver() != runtimeapi.CgroupDriver_CGROUPFS {
		t.Fatalf("cgroup driver = %v, want cgroupfs", rc.GetLinux().GetCgroupDriver())
	}
}

func conditions(t *testing.T, d *harness.Daemon) map[string]*runtimeapi.RuntimeCondition {
	t.Helper()
	st, err := d.Runtime.Status(harness.Ctx(t), &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*runtimeapi.RuntimeCondition{}
	for _, c := range st.GetStatus().GetConditions() {
		out[c.Type] = c
	}
	if _, ok := st.Info["config"]; !ok {
		t.Errorf("verbose status lacks the config: %v", st.Info)
	}
	return out
}

func TestStatusFollowsCNIConfig(t *testing.T) {
	net := harness.PodNetwork(t)
	conf := filepath.Join(net.ConfDir, "10-test.conflist")
	body, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(conf); err != nil {
		t.Fatal(err)
	}
	d := harness.Start(t, harness.WithCNI(net.ConfDir))

	c := conditions(t, d)
	if !c[runtimeapi.RuntimeReady].Status {
		t.Fatalf("runtime not ready: %+v", c[runtimeapi.RuntimeReady])
	}
	nr := c[runtimeapi.NetworkReady]
	if nr.Status || nr.Reason == "" || !strings.Contains(nr.Message, net.ConfDir) {
		t.Fatalf("want NetworkReady=false with a reason naming %s, got %+v", net.ConfDir, nr)
	}

	// A configuration that appears later is picked up without a restart.
	tmp := filepath.Join(net.ConfDir, ".10-test.conflist.tmp")
	if err := os.WriteFile(tmp, body, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, conf); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testutil.Scaled(10 * time.Second))
	for !conditions(t, d)[runtimeapi.NetworkReady].Status {
		if time.Now().After(deadline) {
			t.Fatalf("NetworkReady still false %v after the config appeared: %+v", testutil.Scaled(10*time.Second), conditions(t, d)[runtimeapi.NetworkReady])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestUnimplementedNamesTheRPC(t *testing.T) {
	d := harness.Start(t)
	_, err := d.Runtime.CheckpointContainer(harness.Ctx(t), &runtimeapi.CheckpointContainerRequest{ContainerId: "x"})
	if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "CheckpointContainer") {
		t.Fatalf("want Unimplemented naming the RPC, got %v", err)
	}
}

func TestSIGTERMRemovesSocketAndExitsZero(t *testing.T) {
	d := harness.Start(t)
	d.Stop(t) // fails the test unless the exit status is 0
	if _, err := os.Stat(d.Socket); !os.IsNotExist(err) {
		t.Fatalf("socket %s still exists after shutdown: %v", d.Socket, err)
	}
}

func TestSecondDaemonOnSameRootRefused(t *testing.T) {
	d := harness.Start(t)
	out, err := exec.Command(harness.Binary(t), "--root", d.Root, "--state", d.State,
		"--listen", filepath.Join(d.Dir, "other.sock"), "--config", d.Config).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use") {
		t.Fatalf("a second daemon on the same root must refuse to start; err=%v out=%s", err, out)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct{ body, want string }{
		"unknown key":   {"colour = \"red\"\n", "colour"},
		"invalid value": {"cgroup_driver = \"lxc\"\n", "cgroup_driver"},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".toml")
			if err := os.WriteFile(p, []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(harness.Binary(t), "config", "--config", p).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("want failure naming %q, got err=%v out=%s", tc.want, err, out)
			}
		})
	}
	out, err := exec.Command(harness.Binary(t), "config", "--root", "/srv/x", "--config", filepath.Join(dir, "absent-but-default.toml")).CombinedOutput()
	if err == nil {
		t.Fatalf("an explicit --config that does not exist must fail, got:\n%s", out)
	}
	out, err = exec.Command(harness.Binary(t), "config", "--root", "/srv/x").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `root = "/srv/x"`) {
		t.Fatalf("crisp config must print the effective configuration: err=%v\n%s", err, out)
	}
}
