// Command pause is the kubelet's pod sandbox process for the local test
// cluster (no registry is reachable, so the usual pause image cannot be
// pulled): it waits for SIGTERM or SIGINT and exits 0.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
