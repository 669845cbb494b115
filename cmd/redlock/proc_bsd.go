//go:build unix && !linux

package main

import (
	"os"
	"syscall"
)

// setDeathSignal does nothing: only Linux can kill a child when its parent
// dies.
func setDeathSignal(*syscall.SysProcAttr) {}

// groupAlive reports whether any process of the group that p led is left
// (zombies included).
func groupAlive(p *os.Process) bool {
	return syscall.Kill(-p.Pid, 0) == nil
}
