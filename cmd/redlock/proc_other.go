//go:build !unix

package main

import (
	"os"
	"syscall"
)

func childAttr() *syscall.SysProcAttr { return nil }

// signalGroup signals p alone: there are no process groups to signal here.
func signalGroup(p *os.Process, sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		return p.Kill()
	}
	return p.Signal(sig)
}

// groupAlive reports false: without process groups, only the command itself
// is waited for.
func groupAlive(*os.Process) bool { return false }
