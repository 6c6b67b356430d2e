// Command crisp is a Kubernetes CRI runtime for a single node.
//
//	crisp [flags]          serve the CRI on a unix socket
//	crisp config [flags]   print the effective configuration (--commented:
//	                       every key commented out, as make install writes it)
//	crisp check [flags]    check this node's prerequisites, exit 1 if one is missing
//	crisp version          print the version
package main

import (
	"flag"
	"fmt"
	"os"

	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/config"
	"github.com/crisp-runtime/crisp/sandbox/podinit"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// libcontainer's init and the monitor fallback are this binary
	// re-executed; they must run before anything else.
	runMonitorIfRequested()
	// The pod namespace helper is not a user command: dispatch it before
	// flags and logging are set up, and keep the process it becomes small.
	if len(os.Args) > 1 && os.Args[1] == podinit.Command {
		podinit.Main()
	}
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}

	fs := flag.NewFlagSet("crisp "+cmd, flag.ContinueOnError)
	klog.InitFlags(fs)
	flags := config.NewFlags(fs)
	commented := false
	if cmd == "config" {
		fs.BoolVar(&commented, "commented", false, "print every key commented out with what it does: the file `make install` puts in "+config.DefaultPath)
	}
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "crisp %s: unexpected arguments %v\n", cmd, fs.Args())
		os.Exit(2)
	}

	switch cmd {
	case "version":
		fmt.Printf("crisp %s\n", version)
		return
	case "config", "serve", "check":
	default:
		fmt.Fprintf(os.Stderr, "crisp: unknown command %q (want serve, config, check or version)\n", cmd)
		os.Exit(2)
	}

	cfg, err := flags.Load()
	if err != nil {
		fmt.Fprintf(os.Stderr, "crisp: %v\n", err)
		os.Exit(1)
	}
	if cmd == "check" {
		os.Exit(check(cfg, flags.ConfigPath))
	}
	if cmd == "config" {
		render := cfg.TOML
		if commented {
			render = cfg.Commented
		}
		s, err := render()
		if err != nil {
			fmt.Fprintf(os.Stderr, "crisp: %v\n", err)
			os.Exit(1)
		}
		fmt.Print(s)
		return
	}
	if err := serve(cfg); err != nil {
		klog.ErrorS(err, "crisp failed")
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}
