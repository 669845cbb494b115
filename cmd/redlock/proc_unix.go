//go:build unix

package main

import (
	"os"
	"syscall"
)

// childAttr puts the command in a process group of its own, so that a
// signal reaches it and every process it started (a shell's children
// included), and a terminal's Ctrl-C reaches it once, through redlock,
// rather than twice.
func childAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	setDeathSignal(a)
	return a
}

// signalGroup sends sig to the process group that p leads.
func signalGroup(p *os.Process, sig syscall.Signal) error {
	return syscall.Kill(-p.Pid, sig)
}
