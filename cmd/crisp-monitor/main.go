// Command crisp-monitor is the per-container monitor process of crisp: it
// creates and starts one container through libcontainer, holds its stdio,
// writes its CRI log, serves attach clients and records its exit status, so
// that the container does not depend on the crisp daemon staying up.
//
// It is started by the daemon (container/monitor.Create) as
//
//	crisp-monitor BUNDLE
//
// and is re-executed by libcontainer as `crisp-monitor init` inside the
// container. It is kept lean on purpose: its memory is paid per container.
package main

import (
	"os"

	"github.com/crisp-runtime/crisp/container/monitor"
)

func main() {
	monitor.InitIfRequested()
	os.Exit(monitor.Main(os.Args[1:]))
}
