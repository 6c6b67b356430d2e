package nodecheck

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/runc/libcontainer/seccomp"

	"github.com/crisp-runtime/crisp/image/unpack"
	"github.com/crisp-runtime/crisp/network"
)

// cni loads the network configuration as crisp would. None at all is a
// warning (a CNI add-on may install it after crisp starts; meanwhile only
// hostNetwork pods run); one that is there but unusable fails.
func (n *Node) cni(ctx context.Context) Result {
	const name = "CNI network"
	c := n.Config.CNI
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	file, network, found, err := network.CheckConfDir(ctx, c.ConfDir, c.BinDirs)
	switch {
	case err == nil:
		return ok(name, fmt.Sprintf("network %q from %s, its plugins found in %s", network, file, strings.Join(c.BinDirs, ":")))
	case !found:
		return Result{Name: name, Status: Warn, Detail: "no configuration in " + c.ConfDir + ": only hostNetwork pods can start",
			Fix: "make install writes crisp's default (bridge crisp0, 10.209.0.0/16; hack/cni-config.sh), or install your cluster's CNI add-on"}
	default:
		return Result{Name: name, Status: Fail, Detail: err.Error(),
			Fix: "install the missing plugins (apt-get install containernetworking-plugins puts them in /usr/lib/cni) or fix the file; plugin directories: " + strings.Join(c.BinDirs, ":")}
	}
}

// seccomp needs both the kernel's filter mode and libseccomp linked into
// crisp: kubelet asks for RuntimeDefault on most pods.
func (n *Node) seccomp() Result {
	const name = "seccomp"
	status, _ := os.ReadFile(filepath.Join(n.Proc, "self/status"))
	actions, _ := os.ReadFile(filepath.Join(n.Proc, "sys/kernel/seccomp/actions_avail"))
	if err := kernelSeccomp(string(status), string(actions)); err != nil {
		return Result{Name: name, Status: Fail, Detail: err.Error(), Fix: "a kernel with CONFIG_SECCOMP and CONFIG_SECCOMP_FILTER"}
	}
	if !seccomp.Enabled {
		return Result{Name: name, Status: Fail, Detail: "this crisp was built without seccomp",
			Fix: "build with make build (go build -tags seccomp, needs libseccomp-dev)"}
	}
	a, b, c := seccomp.Version()
	return ok(name, fmt.Sprintf("kernel filters, libseccomp %d.%d.%d", a, b, c))
}

// inflater: without ISA-L, gzip layers inflate on Go's inflater, about 3×
// slower; pulls still work.
func (n *Node) inflater() Result {
	const name = "gzip inflater"
	inflater, isal := unpack.Inflater()
	if !isal {
		return Result{Name: name, Status: Warn, Detail: inflater + ": gzip layers inflate about 3× slower than with ISA-L", Fix: unpack.ISALFix}
	}
	return ok(name, inflater)
}

// kernelSeccomp reads /proc/self/status (a Seccomp: line exists with
// CONFIG_SECCOMP) and the filter actions the kernel offers.
func kernelSeccomp(status, actions string) error {
	found := false
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "Seccomp:") {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("the kernel has no seccomp (no Seccomp: in /proc/self/status)")
	}
	for _, want := range []string{"errno", "kill_process", "allow"} {
		if !strings.Contains(" "+strings.TrimSpace(actions)+" ", " "+want+" ") {
			return fmt.Errorf("the kernel's seccomp filters lack the %s action (actions_avail: %q)", want, strings.TrimSpace(actions))
		}
	}
	return nil
}

// iptables is run by the bridge plugin (ipMasq) and portmap (hostPort) of
// crisp's default network.
func (n *Node) iptables() Result {
	const name = "iptables"
	fix := "apt-get install iptables: the default network's bridge (ipMasq) and portmap (hostPort) plugins run it"
	path, err := exec.LookPath("iptables")
	if err != nil {
		return Result{Name: name, Status: Fail, Detail: "not in PATH", Fix: fix}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").CombinedOutput()
	if err != nil {
		return Result{Name: name, Status: Fail, Detail: fmt.Sprintf("%s --version: %v: %s", path, err, strings.TrimSpace(string(out))), Fix: fix}
	}
	return ok(name, strings.TrimSpace(string(out))+" at "+path)
}
