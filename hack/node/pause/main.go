// Command pause is the pod sandbox ("infra") process of the test node: it holds the pod's
// namespaces open, reaps orphaned children, and exits on SIGINT/SIGTERM, as
// registry.k8s.io/pause does. The test machines cannot pull that image, so the node tier builds
// this one from source and imports it into containerd as its sandbox image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
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
