//go:build linux

package main

import "syscall"

// childAttr makes the kernel kill a child when fgchaos dies, so that no
// replica or redis-server outlives an interrupted run.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
