// Package nodecheck checks a node for what crisp needs before kubelet is
// pointed at it (crisp check): each prerequisite is probed the way crisp
// uses it (an overlay is mounted, not looked up in a list) and reported with
// a fix.
package nodecheck

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/crisp-runtime/crisp/config"
)

// Status is a check's verdict.
type Status int

const (
	OK Status = iota
	// Warn: something optional is missing; a feature is off, pods still run.
	Warn
	// Fail: crisp needs it; crisp check exits 1.
	Fail
)

func (s Status) String() string {
	return [...]string{"ok", "WARN", "FAIL"}[s]
}

// Result is one prerequisite: what was found and, unless OK, what to do.
type Result struct {
	Name   string
	Status Status
	Detail string
	Fix    string
}

func ok(name, detail string) Result { return Result{Name: name, Status: OK, Detail: detail} }

// Node is the machine under check, seen through the paths crisp reads; the
// tests of the parsing parts point them at fixtures.
type Node struct {
	Config *config.Config
	// Proc and CgroupRoot are /proc and /sys/fs/cgroup on a real node.
	Proc, CgroupRoot string
}

// New checks this node for cfg.
func New(cfg *config.Config) *Node {
	return &Node{Config: cfg, Proc: "/proc", CgroupRoot: "/sys/fs/cgroup"}
}

// Run performs every check, in the order Print shows them.
func (n *Node) Run(ctx context.Context) []Result {
	rs := []Result{n.root()}
	rs = append(rs, n.cgroups()...)
	rs = append(rs, n.overlay(), n.idmapped(), n.cni(ctx), n.seccomp(), n.inflater(), n.iptables(), n.socketDir(), n.freeSpace())
	return rs
}

// Print writes one line per result, with its fix under it, and returns how
// many failed.
func Print(w io.Writer, rs []Result) (failed int) {
	for _, r := range rs {
		fmt.Fprintf(w, "%-4s  %-20s %s\n", r.Status, r.Name, r.Detail)
		if r.Status != OK && r.Fix != "" {
			fmt.Fprintf(w, "      %-20s fix: %s\n", "", r.Fix)
		}
		if r.Status == Fail {
			failed++
		}
	}
	return failed
}

func (n *Node) root() Result {
	if os.Geteuid() != 0 {
		return Result{Name: "root", Status: Fail, Detail: fmt.Sprintf("running as uid %d", os.Geteuid()),
			Fix: "run crisp (and crisp check) as root: it mounts, creates namespaces and cgroups"}
	}
	return ok("root", "running as root")
}

// existingDir is path or its nearest existing ancestor: crisp creates its
// root and socket directories, so before the first start only an ancestor
// tells which filesystem they will be on.
func existingDir(path string) string {
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p
		}
		if p == "/" {
			return p
		}
	}
}
