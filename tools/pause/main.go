// pause: PID 1 of a pod sandbox on TracedApp's one-node test cluster. It holds the pod's
// namespaces, reaps zombies, and exits on SIGINT or SIGTERM. Built by `cargo xtask setup`
// (static, CGO_ENABLED=0) and packed into an OCI image by the test harness.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
