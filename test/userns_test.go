//go:build integration

package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/test/harness"
)

// usernsHost is the first host id of the test pods' range, a multiple of
// 65536 as kubelet allocates them.
const usernsHost = 65536 * 7

func usernsMapping() []*runtimeapi.IDMapping {
	return []*runtimeapi.IDMapping{{ContainerId: 0, HostId: usernsHost, Length: 65536}}
}

// requireIDMap skips on a kernel or filesystem without idmapped mounts (the
// check critest makes), where crisp rightly reports no user namespace support.
func requireIDMap(t *testing.T, dir string) {
	t.Helper()
	tree, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		t.Skipf("open_tree %s: %v: no idmapped mounts on this kernel", dir, err)
	}
	defer unix.Close(tree)
	cmd := exec.Command("sleep", "10")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: usernsHost, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: usernsHost, Size: 65536}},
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("user namespace: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		t.Skipf("idmapped mount of %s: %v: not supported by this kernel or filesystem", dir, err)
	}
}

// statOwner is the owner of path as the host sees it.
func statOwner(t *testing.T, path string) (uid, gid uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid, st.Gid
}

// procIDs are the real uid and gid of a host process.
func procIDs(t *testing.T, pid int64) (uid, gid string) {
	t.Helper()
	for _, line := range strings.Split(readFile(t, fmt.Sprintf("/proc/%d/status", pid)), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 1 && f[0] == "Uid:":
			uid = f[1]
		case len(f) > 1 && f[0] == "Gid:":
			gid = f[1]
		}
	}
	return uid, gid
}

// TestUserNamespacePod runs a pod with its own user namespace (kubelet's
// hostUsers: false): root inside is the mapped id outside, the image and an
// idmapped volume appear owned by the pod's root, and what the container
// writes lands with the mapped host ids.
func TestUserNamespacePod(t *testing.T) {
	harness.RequireRegistry(t)
	pn := harness.PodNetwork(t)
	d := harness.Start(t, harness.WithCNI(pn.ConfDir))
	requireIDMap(t, d.Root)

	st, err := d.Runtime.Status(harness.Ctx(t), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !st.GetRuntimeHandlers()[0].GetFeatures().GetUserNamespaces() {
		t.Fatalf("Status does not advertise user_namespaces on a kernel with idmapped mounts: %v\n%s", st.GetRuntimeHandlers(), d.LogTail(20))
	}
	if st.GetFeatures().GetUserNamespacesHostNetwork() {
		t.Error("Status advertises user_namespaces_host_network, which crisp does not support")
	}
	pull(t, d, ctrImage)
	pull(t, d, volImage)

	userns := &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: usernsMapping(), Gids: usernsMapping()}
	podCfg := podConfig("userns")
	podCfg.LogDirectory = t.TempDir()
	// A shared PID namespace: its reaper lives in the user namespace too.
	podCfg.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD, UsernsOptions: userns}
	podCfg.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "80", "kernel.shmmni": "1000", "kernel.domainname": "userns.test"}
	pod := runPod(t, d, podCfg)
	pst, info := podStatus(t, d, pod)
	if got := pst.GetLinux().GetNamespaces().GetOptions().GetUsernsOptions(); got.GetMode() != runtimeapi.NamespaceMode_POD || len(got.GetUids()) != 1 || got.GetUids()[0].GetHostId() != usernsHost {
		t.Errorf("pod status userns_options = %v, want the pod's", got)
	}
	if !isNSFS(info.Namespaces["user"]) {
		t.Fatalf("user namespace not pinned: %v", info.Namespaces)
	}
	if info.Reaper == nil {
		t.Fatal("shared-PID pod without a reaper")
	}
	if uid, gid := procIDs(t, int64(info.Reaper.PID)); uid != strconv.Itoa(usernsHost) || gid != strconv.Itoa(usernsHost) {
		t.Errorf("reaper runs as %s:%s on the host, want the pod's root %d", uid, gid, usernsHost)
	}

	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "by-node-root"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := ctrConfig("app", "sleep 3600")
	cfg.Linux.SecurityContext.NamespaceOptions = podCfg.Linux.SecurityContext.NamespaceOptions
	img := imageVolume("/img", volImage, "")
	img.UidMappings, img.GidMappings = usernsMapping(), usernsMapping()
	cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/vol", HostPath: vol, UidMappings: usernsMapping(), GidMappings: usernsMapping()}, img}
	id := runCtr(t, d, pod, podCfg, cfg)
	pid := ctrPid(t, d, id)

	in := func(script string) string {
		t.Helper()
		r := execSync(t, d, id, 20, "sh", "-c", script)
		if r.ExitCode != 0 {
			t.Fatalf("%q: exit %d: %s%s", script, r.ExitCode, r.Stdout, r.Stderr)
		}
		return strings.TrimSpace(string(r.Stdout))
	}
	if got := strings.Fields(in("cat /proc/self/uid_map")); strings.Join(got, " ") != fmt.Sprintf("0 %d 65536", usernsHost) {
		t.Errorf("uid_map inside = %q", got)
	}
	if got := in("id -u; id -g"); got != "0\n0" {
		t.Errorf("ids inside = %q, want 0 and 0", got)
	}
	if uid, gid := procIDs(t, pid); uid != strconv.Itoa(usernsHost) || gid != strconv.Itoa(usernsHost) {
		t.Errorf("container runs as %s:%s on the host, want %d", uid, gid, usernsHost)
	}
	// The runtime's mounts: sysfs of the netns the pod owns, its own
	// mqueue, device nodes bound from the host (mknod is the node's).
	in("grep -q ' /sys sysfs ' /proc/mounts && ls /sys/class/net | grep -qx eth0 && grep -q ' /dev/mqueue mqueue ' /proc/mounts && test -c /dev/null && echo x > /dev/null && head -c1 /dev/urandom >/dev/null")
	// The pod's sysctls were set by its own root, in namespaces it owns.
	if got := in("cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmni /proc/sys/kernel/domainname"); got != "80\n1000\nuserns.test" {
		t.Errorf("pod sysctls inside = %q", got)
	}

	// Image layers: the pod's root owns them inside, the mapped id outside,
	// and the image on disk stays owned by the node's root.
	if got := in("stat -c %u:%g /bin/sh /etc/passwd /img/test-image-1 /img/bin/sh"); got != "0:0\n0:0\n0:0\n0:0" {
		t.Errorf("image and image volume files inside owned by %q, want 0:0", got)
	}
	root := fmt.Sprintf("/proc/%d/root", pid)
	if uid, _ := statOwner(t, root+"/etc/passwd"); uid != usernsHost {
		t.Errorf("image file seen from the host owned by %d, want %d", uid, usernsHost)
	}
	// Writes: a new file in /, and an image file changed (copy-up).
	in("touch /new-in-root && echo extra >> /etc/passwd && mkdir -p /var/new")
	for _, p := range []string{"/new-in-root", "/etc/passwd", "/var/new"} {
		if uid, gid := statOwner(t, root+p); uid != usernsHost || gid != usernsHost {
			t.Errorf("%s written in the container is %d:%d on the host, want %d", p, uid, gid, usernsHost)
		}
	}
	// The pod's files and /dev/shm are its root's, as in any other pod.
	if got := in("stat -c %u:%g /etc/hosts /etc/resolv.conf /etc/hostname /dev/shm"); got != "0:0\n0:0\n0:0\n0:0" {
		t.Errorf("pod files and /dev/shm inside owned by %q, want 0:0", got)
	}
	// A container cannot see or use ids outside its range.
	if r := execSync(t, d, id, 10, "chown", "70000", "/new-in-root"); r.ExitCode == 0 {
		t.Error("chown to an unmapped id succeeded")
	}

	// The idmapped volume: the node root's file is the pod root's inside,
	// and the container's writes are the mapped id on the host.
	if got := in("stat -c %u:%g /vol/by-node-root; echo y > /vol/by-pod-root"); got != "0:0" {
		t.Errorf("volume file inside owned by %q, want 0:0", got)
	}
	if uid, gid := statOwner(t, filepath.Join(vol, "by-node-root")); uid != 0 || gid != 0 {
		t.Errorf("volume file changed owner on the host: %d:%d", uid, gid)
	}
	if uid, _ := statOwner(t, filepath.Join(vol, "by-pod-root")); uid != 0 {
		// Through the idmapped mount, the container's root writes as the
		// on-disk id 0: the mount maps it back.
		t.Errorf("file the pod's root wrote into the volume is %d on disk, want 0", uid)
	}

	// After a daemon restart the container keeps its user namespace.
	d.Restart(t)
	if got := in("id -u; stat -c %u /etc/passwd"); got != "0\n0" {
		t.Errorf("after restart: %q", got)
	}

	stopPod(t, d, pod)
	removePod(t, d, pod)
	if _, err := os.Stat(info.Namespaces["user"]); !os.IsNotExist(err) {
		t.Errorf("user namespace pin left after removal: %v", err)
	}
	if m := harness.MountsBelow(d.State); len(m) > 0 {
		for _, p := range m {
			if strings.Contains(p, "/containers/") {
				t.Errorf("mount left after pod removal: %s", p)
			}
		}
	}
}

// TestUserNamespaceInvalid checks the requests kubelet never sends but other
// clients (and critest) do.
func TestUserNamespaceInvalid(t *testing.T) {
	pn := harness.PodNetwork(t)
	d := harness.Start(t, harness.WithCNI(pn.ConfDir))
	two := append(usernsMapping(), &runtimeapi.IDMapping{ContainerId: 65536, HostId: 2 * usernsHost, Length: 65536})
	for name, tc := range map[string]struct {
		userns  *runtimeapi.UserNamespace
		hostNet bool
		msg     string
	}{
		"two mappings":       {&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: two, Gids: usernsMapping()}, false, "exactly one mapping"},
		"root not mapped":    {&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: []*runtimeapi.IDMapping{{ContainerId: 1, HostId: usernsHost, Length: 100}}, Gids: usernsMapping()}, false, "container id 0"},
		"no mappings":        {&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD}, false, "needs a mapping"},
		"container mode":     {&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_CONTAINER}, false, "not supported"},
		"target mode":        {&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_TARGET}, false, "not supported"},
		"with host network":  {&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: usernsMapping(), Gids: usernsMapping()}, true, "host's network"},
		"node with mappings": {&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE, Uids: usernsMapping(), Gids: usernsMapping()}, false, "only valid with mode POD"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := podConfig("userns-bad")
			cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = tc.userns
			if tc.hostNet {
				cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
			}
			resp, err := d.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
			if err == nil {
				t.Fatalf("pod %s created", resp.PodSandboxId)
			}
			if s, _ := status.FromError(err); s.Code() != codes.InvalidArgument || !strings.Contains(s.Message(), tc.msg) {
				t.Fatalf("%v, want InvalidArgument containing %q", err, tc.msg)
			}
		})
	}
}
