//go:build !linux

package main

import "syscall"

// childAttr: outside Linux children are only stopped by fgchaos's own
// clean-up.
func childAttr() *syscall.SysProcAttr { return nil }
