package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/config"
	"github.com/crisp-runtime/crisp/internal/nodecheck"
)

// check prints each prerequisite of this node for cfg with a fix, and
// returns the exit status: 1 when one that crisp needs is missing.
func check(cfg *config.Config, configPath string) int {
	// The CNI loader logs the files it skips; the report says it better.
	klog.SetOutput(io.Discard)
	klog.LogToStderr(false)
	_ = flag.Set("logtostderr", "false")
	fmt.Printf("crisp check: this node for crisp %s (configuration %s)\n", version, configPath)
	failed := nodecheck.Print(os.Stdout, nodecheck.New(cfg).Run(context.Background()))
	if failed > 0 {
		fmt.Printf("%d required prerequisite(s) missing: crisp cannot run pods here (FAIL needed, WARN optional)\n", failed)
		return 1
	}
	fmt.Println("all required prerequisites present (WARN lines are optional features)")
	return 0
}
