// Command crisp-monitor is the per-container monitor process of crisp: it
// creates and starts one container through libcontainer, holds its stdio,
// writes its CRI log, serves attach clients and records its exit status, so
// that the container does not depend on the crisp daemon staying up.
//
// Its code is package container/monitor/process; it is started by the
// daemon (container/monitor.Create) as
//
//	crisp-monitor BUNDLE
//
// and is re-executed by libcontainer as `crisp-monitor init` inside the
// container, and by the monitor itself for an exec's C init (a constructor
// that runs before the Go runtime, container/monitor/internal/cinit) and
// to compile a container's seccomp filter once. The daemon also starts it as `crisp-monitor pod-init` to create
// a pod's namespaces, and that process stays as the reaper (PID 1) of a pod
// that shares one PID namespace. It is kept lean on purpose: its memory is
// paid per container and per shared-PID pod.
package main

import (
	"os"

	"github.com/crisp-runtime/crisp/container/monitor/process"
	"github.com/crisp-runtime/crisp/sandbox/podinit"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == podinit.Command {
		podinit.Main()
	}
	process.InitIfRequested()
	os.Exit(process.Main(os.Args[1:]))
}
