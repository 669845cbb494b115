//go:build unix

package integration

import "syscall"

// processAlive reports whether a process with this pid exists on this host.
func processAlive(pid int) bool {
	// Signal 0 checks for the process without touching it; EPERM means it
	// exists but belongs to another user.
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
