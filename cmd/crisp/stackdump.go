package main

import (
	"bytes"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"k8s.io/klog/v2"
)

// dumpStacksOnSIGUSR1 writes every goroutine's stack to the log when the
// daemon gets SIGUSR1, as containerd and CRI-O do: a wedged RPC or a leak
// can then be diagnosed on a live node without restarting it (SIGQUIT
// would also dump, but kills the daemon).
func dumpStacksOnSIGUSR1() (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-sigs:
				n, stacks := goroutineStacks()
				klog.Infof("=== SIGUSR1: %d goroutines ===\n%s=== end of goroutine dump ===", n, stacks)
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(sigs); close(done) }
}

// goroutineStacks grows its buffer until the whole dump fits.
func goroutineStacks() (int, []byte) {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return bytes.Count(buf, []byte("\ngoroutine ")) + 1, buf
}
