//go:build linux

package redisproc

import "syscall"

// childAttr makes the kernel kill a child when its parent dies, so that no
// server outlives an interrupted run or test.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
