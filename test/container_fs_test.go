//go:build integration

package test

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/test/harness"
)

// TestImageFsInfoCountsWritableLayers: like containerd's snapshotter usage,
// the image filesystem's usage includes what containers wrote to their
// writable layers when both are on one filesystem (they are here: one root).
func TestImageFsInfoCountsWritableLayers(t *testing.T) {
	d, pod, podCfg := busyboxPod(t, "fsinfo")
	usage := func() *runtimeapi.ImageFsInfoResponse {
		resp, err := d.Images.ImageFsInfo(harness.Ctx(t), &runtimeapi.ImageFsInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.ImageFilesystems) != 1 || len(resp.ContainerFilesystems) != 0 {
			t.Fatalf("filesystems: image %v container %v, want one image filesystem as containerd reports", resp.ImageFilesystems, resp.ContainerFilesystems)
		}
		return resp
	}
	before := usage().ImageFilesystems[0]

	id := runCtr(t, d, pod, podCfg, ctrConfig("writer", "sleep 1000"))
	execSync(t, d, id, 30, "dd", "if=/dev/zero", "of=/big", "bs=1M", "count=8")
	// The first stats call samples the new container's writable layer.
	st, err := d.Runtime.ContainerStats(harness.Ctx(t), &runtimeapi.ContainerStatsRequest{ContainerId: id})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Stats.GetWritableLayer().GetUsedBytes().GetValue(); got < 8<<20 {
		t.Fatalf("writable layer %d bytes after writing 8 MiB", got)
	}
	after := usage().ImageFilesystems[0]
	if grew := after.UsedBytes.Value - before.UsedBytes.Value; grew < 8<<20 {
		t.Errorf("image filesystem usage grew by %d bytes after a container wrote 8 MiB", grew)
	}
	if after.InodesUsed.Value <= before.InodesUsed.Value {
		t.Errorf("inodes used %d -> %d", before.InodesUsed.Value, after.InodesUsed.Value)
	}
}
