//go:build !linux

package main

import (
	"fmt"
	"os"
)

// The harness pins processes to CPUs with taskset and reads their CPU time,
// memory and context switches from /proc: it runs on Linux only.
func main() {
	fmt.Fprintln(os.Stderr, "strangler-bench: runs on Linux only (taskset, /proc)")
	os.Exit(2)
}
